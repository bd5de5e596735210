//! The fuzz targets' checks on stable Rust, as part of `cargo test`.
//!
//! Replays every kept input of `fuzz/` (hand-made seeds, the minimized corpus, and the
//! regression inputs of past findings) through `cache_core::fuzz_checks`, then runs a bounded
//! property test per target: arbitrary bytes, and inputs built from the real encoders, whole
//! and damaged. The long runs are `cargo xtask fuzz` (libFuzzer, nightly).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use cache_core::buffer::Coalesced;
use cache_core::delivery::batch::SealedBatch;
use cache_core::delivery::batch_id::BatchId;
use cache_core::delivery::dlq::{DeadLetter, DeadReason};
use cache_core::delivery::state::FlushState;
use cache_core::entry::{Audience, Dirty, Entry, EntryKind};
use cache_core::envelope::{self, CodecPolicy};
use cache_core::fuzz_checks;
use cache_core::key::{CacheKey, ItemKey, Namespace, Scope};
use cache_core::record::BufferedWrite;
use cache_core::serve::fill::{self, FillLease};
use cache_core::stamp::{Stamp, MAX_STAMP_MILLIS};
use cache_core::store::{KvStore, MemoryStore};
use cache_core::stored::kv_key::KvKey;
use cache_core::time::UnixMillis;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

type Check = fn(&[u8]);

const TARGETS: &[(&str, Check)] = &[
    ("envelope", fuzz_checks::envelope),
    ("key", fuzz_checks::key),
    ("merge_patch", fuzz_checks::merge_patch),
    ("batch_answer", fuzz_checks::batch_answer),
    ("record", fuzz_checks::record),
];

/// Where the kept inputs of each target live, under `fuzz/`.
const KEPT: &[&str] = &["seeds", "corpus", "regressions"];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_kept_input_passes_its_target_checks() {
    let mut failed = Vec::new();
    let mut replayed = 0;
    for (target, check) in TARGETS {
        for kind in KEPT {
            for file in files(&fuzz_dir().join(kind).join(target)) {
                let data = std::fs::read(&file).expect("readable input");
                replayed += 1;
                if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
                    failed.push(file.display().to_string());
                }
            }
        }
    }
    assert!(
        failed.is_empty(),
        "inputs failing their checks: {failed:#?}"
    );
    eprintln!("replayed {replayed} kept inputs");
}

/// Seeds are hand-made valid inputs: each reaches the accepting path of its parser, so the
/// fuzzer starts deep and a format change that orphans them shows here.
#[test]
fn every_seed_is_a_valid_input() {
    for (target, _) in TARGETS {
        let seeds = files(&fuzz_dir().join("seeds").join(target));
        assert!(seeds.len() >= 3, "{target}: {} seeds", seeds.len());
        for file in seeds {
            let data = std::fs::read(&file).expect("readable seed");
            assert!(
                is_valid(target, &data),
                "seed {} is not valid",
                file.display()
            );
        }
    }
}

fn is_valid(target: &str, data: &[u8]) -> bool {
    match target {
        "envelope" => envelope::decode(data).is_ok(),
        "key" => {
            let text = String::from_utf8_lossy(data);
            KvKey::parse(&text).is_some()
                || text.split_once('/').is_some_and(|(ns, raw)| {
                    let (ns, scope) = ns.split_once('#').unwrap_or((ns, ""));
                    Namespace::parse(ns).is_ok()
                        && (scope.is_empty() || Scope::parse(scope).is_ok())
                        && ItemKey::from_path_segment(raw).is_ok()
                })
        }
        "merge_patch" => {
            serde_json::Deserializer::from_slice(data)
                .into_iter::<Value>()
                .take(2)
                .filter(Result::is_ok)
                .count()
                == 2
        }
        "batch_answer" => {
            let status = data.split(|&b| b == b'\n').next().unwrap_or_default();
            std::str::from_utf8(status).is_ok_and(|s| s.trim().parse::<u16>().is_ok())
        }
        "record" => {
            BufferedWrite::decode(data).is_ok()
                || SealedBatch::decode(data).is_ok()
                || DeadLetter::decode(data).is_ok()
                || fill::decode(data).is_some()
                || serde_json::from_slice::<Value>(data).is_ok_and(|v| v["v"] == json!(1))
        }
        _ => false,
    }
}

// ---- Structure-aware inputs ----

/// How to damage an encoded input: keep, flip a byte, truncate, or insert a byte.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Set(Index, u8),
    Truncate(Index),
    Insert(Index, u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        Just(Damage::None),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Set(i, b)),
        any::<Index>().prop_map(Damage::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Insert(i, b)),
    ]
}

fn damaged(mut bytes: Vec<u8>, how: &Damage) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    match how {
        Damage::None => {}
        Damage::Set(i, b) => {
            let at = i.index(bytes.len());
            bytes[at] = *b;
        }
        Damage::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        Damage::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
    }
    bytes
}

fn stamp() -> impl Strategy<Value = Stamp> {
    (0..=MAX_STAMP_MILLIS, any::<u16>(), any::<u64>())
        .prop_map(|(m, s, i)| Stamp::new(UnixMillis(m), s, i))
}

fn millis() -> impl Strategy<Value = UnixMillis> {
    any::<u64>().prop_map(UnixMillis)
}

/// JSON values over a small set of member names, so that targets and patches overlap.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-c]{0,3}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map("[a-d]", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn entry_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..128),
        (vec(any::<u8>(), 1..16), 1usize..64).prop_map(|(chunk, n)| chunk.repeat(n)),
        json_value().prop_map(|v| v.to_string().into_bytes()),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        prop_oneof![
            Just(EntryKind::Value),
            Just(EntryKind::Absent),
            Just(EntryKind::Tombstone)
        ],
        entry_value(),
        proptest::option::of("\\PC{0,40}"),
        any::<u64>(),
        proptest::option::of(millis()),
        proptest::option::of(millis()),
        (millis(), millis(), millis()),
        proptest::option::of((stamp(), millis())),
    )
        .prop_map(
            |(kind, value, etag, version, fetched_at, written_at, windows, dirty)| Entry {
                kind,
                value,
                etag,
                version,
                fetched_at,
                written_at,
                fresh_until: windows.0,
                stale_until: windows.1,
                stale_if_error_until: windows.2,
                audience: Audience::Granted,
                dirty: dirty.map(|(stamp, since)| Dirty { stamp, since }),
                invalidated_at: (version % 4 == 0).then_some(windows.0),
            },
        )
}

const NAMESPACE: &str = "[a-z0-9_-]{1,12}|[a-z]{60,66}|[A-Za-z:#/]{1,3}|";
const SCOPE: &str = "[a-z0-9]{1,34}|[A-Z]{1,3}|";
const RAW_SEGMENT: &str =
    "([a-zA-Z0-9:#/~._+-]|%[0-9A-Fa-f]{2}|%[0-9A-Fa-f]?|[\\x00-\\x1f]|\\PC){0,60}";

fn item_key() -> impl Strategy<Value = ItemKey> {
    prop_oneof!["\\PC{1,60}", "[a-z:#/]{180,220}"]
        .prop_filter_map("valid key", |s: String| ItemKey::parse(&s).ok())
}

fn name_text() -> impl Strategy<Value = String> {
    prop_oneof![
        // {ns}[#{scope}]/{raw segment}
        (NAMESPACE, proptest::option::of(SCOPE), RAW_SEGMENT).prop_map(|(ns, scope, raw)| {
            match scope {
                Some(scope) => format!("{ns}#{scope}/{raw}"),
                None => format!("{ns}/{raw}"),
            }
        }),
        // A valid item key as a path segment, with its namespace.
        ("[a-z0-9_-]{1,64}", item_key())
            .prop_map(|(ns, key)| format!("{ns}/{}", key.to_path_segment())),
        // Rendered KV keys of valid cache keys, scoped or not.
        (
            "[a-z0-9_-]{1,64}",
            proptest::option::of("[a-z0-9]{1,32}"),
            item_key()
        )
            .prop_filter_map("fits the KV key limit", |(ns, scope, key)| {
                let ns = Namespace::parse(&ns).ok()?;
                let scope = scope.map(|s| Scope::parse(&s)).transpose().ok()?;
                CacheKey::new(ns, key, scope).ok().map(|ck| ck.kv_key())
            }),
        // KV keys of every kind, well-formed or nearly so.
        "c:[a-z]{1,4}(#[a-z0-9]{0,3})?:\\PC{0,8}",
        "[wdb]:[0-9a-fA-F]{30,33}",
        "m:fill:([0-9a-fA-F]{16}|[+][0-9a-f]{15}|[0-9a-f+-]{14,18})",
        "m:(lease|flush|count:\\PC{0,8}|fill:|other)",
        stamp().prop_map(|s| s.to_string()),
        "\\PC{0,40}",
    ]
}

fn batch_answer_input() -> impl Strategy<Value = Vec<u8>> {
    let status = prop_oneof![
        Just(200u16),
        200u16..300,
        prop_oneof![Just(401u16), Just(403), Just(408), Just(425), Just(429)],
        500u16..600,
        any::<u16>(),
    ];
    let retry_after = prop_oneof!["", "[0-9]{1,3}", " [0-9]{1,21} ", "\\PC{0,12}"];
    let result = (0usize..6, proptest::option::of("\\PC{0,8}")).prop_map(|(i, reason)| {
        let status = [
            "applied",
            "stale",
            "duplicate",
            "conflict",
            "rejected",
            "lost",
        ][i];
        match reason {
            Some(r) => json!({"status": status, "reason": r}),
            None => json!({"status": status}),
        }
    });
    let body = prop_oneof![
        vec(result.clone(), 0..40).prop_map(|r| json!({ "results": r }).to_string().into_bytes()),
        (vec(result, 0..8), json_value()).prop_map(|(r, extra)| {
            json!({"results": r, "extra": extra})
                .to_string()
                .into_bytes()
        }),
        vec(any::<u8>(), 0..64),
        json_value().prop_map(|v| v.to_string().into_bytes()),
    ];
    (status, retry_after, body).prop_map(|(status, retry_after, body)| {
        let mut input = format!("{status}\n{retry_after}\n").into_bytes();
        input.extend_from_slice(&body);
        input
    })
}

fn buffered_write() -> impl Strategy<Value = BufferedWrite> {
    (
        "[a-z0-9_-]{1,64}",
        item_key(),
        proptest::option::of(json_value()),
        stamp(),
        millis(),
    )
        .prop_map(|(ns, key, value, stamp, written_at)| BufferedWrite {
            ns: Namespace::parse(&ns).expect("valid by construction"),
            key,
            value,
            stamp,
            written_at,
            subject: None,
        })
}

fn dead_reason() -> impl Strategy<Value = DeadReason> {
    prop_oneof![
        Just(DeadReason::Conflict),
        Just(DeadReason::Rejected),
        Just(DeadReason::Permanent),
        Just(DeadReason::Exhausted),
        Just(DeadReason::TooLarge),
        Just(DeadReason::Corrupt),
    ]
}

fn stored_record() -> impl Strategy<Value = Vec<u8>> {
    let sealed = (
        vec((buffered_write(), vec(stamp(), 0..3)), 0..4),
        millis(),
        any::<u32>(),
    )
        .prop_map(|(items, now, attempts)| {
            let items = items
                .into_iter()
                .map(|(winner, mut covers)| {
                    covers.push(winner.stamp);
                    Coalesced { winner, covers }
                })
                .collect();
            let mut batch = SealedBatch::new(items, now);
            batch.attempts = attempts;
            batch.encode().expect("a small batch")
        });
    let letter = (
        stamp(),
        proptest::option::of(buffered_write()),
        proptest::option::of("\\PC{0,20}"),
        dead_reason(),
        proptest::option::of("\\PC{0,20}"),
        any::<u32>(),
        proptest::option::of(vec(stamp(), 1..3)),
        millis(),
    )
        .prop_map(
            |(stamp, write, raw, reason, detail, attempts, batch, dead_at)| {
                DeadLetter {
                    stamp,
                    write,
                    raw,
                    reason,
                    detail,
                    attempts,
                    batch_id: batch.map(|s| BatchId::derive(&s)),
                    dead_at,
                }
                .encode()
                .expect("a dead letter encodes")
            },
        );
    let state = (
        any::<u32>(),
        proptest::option::of(millis()),
        proptest::option::of("\\PC{0,12}"),
        any::<u64>(),
    )
        .prop_map(|(failures, at, text, buffered_bytes)| {
            let state = FlushState {
                failures,
                next_attempt_at: at,
                last_run_at: at,
                last_outcome: text.clone(),
                last_error: text,
                last_success_at: None,
                buffered_bytes,
                buffered_writes: buffered_bytes / 3,
                oldest_buffered: at,
                epoch: u64::from(failures),
                epoch_started_at: at,
                dead_letters: buffered_bytes / 5,
                sealed_batches: u64::from(failures),
            };
            let mut store = MemoryStore::new();
            state.save(&mut store).expect("memory store");
            store
                .get(&KvKey::FlushState.render())
                .expect("memory store")
                .expect("just saved")
        });
    let fill_lease = (any::<u64>(), millis())
        .prop_map(|(owner, expires_at)| fill::encode(&FillLease { owner, expires_at }));
    prop_oneof![
        buffered_write().prop_map(|w| w.encode().expect("a small record")),
        sealed,
        letter,
        state,
        fill_lease,
    ]
}

const CASES: u32 = 3_000;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        // Findings are kept as raw inputs under fuzz/regressions/, replayed above.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_pass_every_check(data in vec(any::<u8>(), 0..256)) {
        for (_, check) in TARGETS {
            check(&data);
        }
    }

    #[test]
    fn envelopes_whole_and_damaged_pass_the_envelope_checks(
        e in entry(),
        compress_min_bytes in 0usize..200,
        how in damage(),
    ) {
        let bytes = envelope::encode(&e, &CodecPolicy { compress_min_bytes })
            .expect("a small entry encodes");
        prop_assert_eq!(envelope::decode(&bytes), Ok(e));
        fuzz_checks::envelope(&bytes);
        fuzz_checks::envelope(&damaged(bytes, &how));
    }

    #[test]
    fn deflate_streams_whole_and_damaged_pass_the_envelope_checks(
        value in entry_value(),
        level in 0u8..=10,
        how in damage(),
    ) {
        // The envelope check wraps its input as a deflate payload with a valid checksum.
        let stream = miniz_oxide::deflate::compress_to_vec(&value, level);
        fuzz_checks::envelope(&stream);
        fuzz_checks::envelope(&damaged(stream, &how));
    }

    #[test]
    fn names_pass_the_key_checks(text in name_text()) {
        fuzz_checks::key(text.as_bytes());
    }

    #[test]
    fn json_pairs_pass_the_merge_patch_checks(target in json_value(), patch in json_value()) {
        fuzz_checks::merge_patch(format!("{target} {patch}").as_bytes());
    }

    #[test]
    fn db_api_answers_pass_the_batch_answer_checks(input in batch_answer_input()) {
        fuzz_checks::batch_answer(&input);
    }

    #[test]
    fn stored_records_whole_and_damaged_pass_the_record_checks(
        bytes in stored_record(),
        how in damage(),
    ) {
        fuzz_checks::record(&bytes);
        fuzz_checks::record(&damaged(bytes, &how));
    }
}
