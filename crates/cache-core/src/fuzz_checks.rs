//! Invariants of the decoders that read untrusted bytes, as checks over one byte string each.
//!
//! Every function here takes arbitrary bytes, feeds them to a parser that sees data from
//! outside (stored KV values, URL path segments, client JSON, DB API answers) and asserts what
//! must hold of the result: the parser returns instead of panicking, and whatever it accepts
//! survives its own encoder unchanged. The functions never panic except through those
//! assertions.
//!
//! They live in one place because two harnesses run them: the libFuzzer targets in `fuzz/`
//! (`cargo xtask fuzz`, nightly) and the stable replay and property test
//! `tests/fuzz_corpus.rs`, part of `cargo test`. Both call the same checks, so a finding of the
//! fuzzer is a failing test as soon as its input is kept under `fuzz/regressions/`. Not part
//! of the crate's API.

use serde_json::{Map, Value};

use crate::buffer::Coalesced;
use crate::config::CacheConfig;
use crate::contract::{BatchResponse, ItemStatus, WriteOp};
use crate::db::{parse_batch_answer, SendError};
use crate::delivery::batch::SealedBatch;
use crate::delivery::batch_id::BatchId;
use crate::delivery::dlq::DeadLetter;
use crate::delivery::lease;
use crate::delivery::settle::{settle_answer, Settled, Tally};
use crate::delivery::state::FlushState;
use crate::entry::{Audience, Dirty, Entry, EntryKind};
use crate::envelope::{self, Codec, CodecPolicy, EnvelopeError, MAX_ETAG_BYTES};
use crate::hash::fnv1a64;
use crate::key::{
    self, CacheKey, ItemKey, Namespace, Scope, MAX_ITEM_KEY_BYTES, MAX_NAMESPACE_LEN, MAX_SCOPE_LEN,
};
use crate::record::{BufferedWrite, RecordError};
use crate::serve::fill;
use crate::stamp::Stamp;
use crate::store::{KvStore, MemoryStore};
use crate::stored::kv_key::{KvKey, RecordKind, MAX_KV_KEY_BYTES, MAX_KV_VALUE_BYTES};
use crate::time::{TestClock, UnixMillis};

/// Largest answer [`batch_answer`] also settles against a sealed batch (settling is linear).
const MAX_SETTLED_RESULTS: usize = 32;

/// Cache envelopes (`c:` values): decoding never panics; a decoded entry re-encodes under
/// either codec policy (or is refused for a stated limit) and decodes to the same entry.
///
/// The payload checksum turns away almost every mutation of a real envelope's payload, so the
/// input is also tried as the payload of a deflate envelope with a correct checksum and
/// length: that reaches the inflater with arbitrary bytes, and must decode when they inflate.
pub fn envelope(data: &[u8]) {
    check_envelope(data);
    let inflated =
        miniz_oxide::inflate::decompress_to_vec_with_limit(data, MAX_KV_VALUE_BYTES).ok();
    let wrapped = deflate_envelope(data, inflated.as_ref().map_or(0, Vec::len));
    if let Some(value) = inflated {
        let entry = envelope::decode(&wrapped);
        assert_eq!(
            entry.map(|e| e.value).as_ref(),
            Ok(&value),
            "a well-formed deflate envelope"
        );
    }
    check_envelope(&wrapped);
}

/// An envelope of a value entry whose deflate payload is `payload`, declared `len` bytes long.
fn deflate_envelope(payload: &[u8], len: usize) -> Vec<u8> {
    let header = format!(
        r#"{{"kind":"value","version":1,"fresh_until":0,"stale_until":0,"stale_if_error_until":0,"len":{len},"sum":{}}}"#,
        fnv1a64(payload)
    );
    let header_len = u32::try_from(header.len()).expect("a short header");
    let mut out = Vec::with_capacity(8 + header.len() + payload.len());
    out.extend_from_slice(&envelope::MAGIC);
    out.extend_from_slice(&[envelope::FORMAT_VERSION, 1]);
    out.extend_from_slice(&header_len.to_be_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

fn check_envelope(data: &[u8]) {
    let codec = envelope::codec_of(data);
    let Ok(entry) = envelope::decode(data) else {
        return;
    };
    assert!(codec.is_ok(), "decoded an envelope with codec {codec:?}");
    let policies = [
        CodecPolicy {
            compress_min_bytes: 0,
        },
        CodecPolicy {
            compress_min_bytes: usize::MAX,
        },
    ];
    for policy in policies {
        match envelope::encode(&entry, &policy) {
            Ok(bytes) => {
                assert_eq!(
                    envelope::decode(&bytes).as_ref(),
                    Ok(&entry),
                    "re-encoded envelope"
                );
                let codec = envelope::codec_of(&bytes);
                if policy.compress_min_bytes == usize::MAX {
                    assert_eq!(codec, Ok(Codec::Identity), "deflate below the threshold");
                }
                if codec == Ok(Codec::Deflate) {
                    let payload = payload_len(&bytes);
                    assert!(
                        payload < entry.value.len(),
                        "deflated {} bytes into {payload}",
                        entry.value.len()
                    );
                }
            }
            Err(EnvelopeError::EtagTooLong) => {
                let len = entry.etag.as_ref().map_or(0, String::len);
                assert!(len > MAX_ETAG_BYTES, "etag of {len} bytes refused");
            }
            Err(EnvelopeError::TooLarge { size, limit }) => {
                assert!(
                    size > limit,
                    "{size} bytes refused under a {limit}-byte limit"
                );
            }
            Err(other) => panic!("a decoded entry does not re-encode: {other}"),
        }
    }
}

/// Names from URLs and KV keys: percent-decoding, namespaces, item keys, scopes, stamps,
/// batch ids, cache keys and the KV key layout. Whatever parses renders back to the same text
/// (or, for item keys, to a path segment that parses to the same key), and stays in bounds.
///
/// The input, read as UTF-8 (lossily), is tried whole as every kind of name, and split as
/// `{ns}[#{scope}]/{raw key}` for a cache key.
pub fn key(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    let encoded = key::percent_encode_segment(text);
    assert!(is_encoded_segment(&encoded), "segment {encoded:?}");
    assert_eq!(
        key::percent_decode(&encoded),
        Ok(text.as_bytes().to_vec()),
        "percent-encoding {text:?}"
    );
    if let Ok(decoded) = key::percent_decode(text) {
        assert!(decoded.len() <= text.len(), "decoding grew {text:?}");
    }

    if let Ok(k) = ItemKey::from_path_segment(text) {
        check_item_key(&k);
    }
    if let Ok(k) = ItemKey::parse(text) {
        assert_eq!(k.as_str(), text);
        check_item_key(&k);
    }
    if let Ok(ns) = Namespace::parse(text) {
        assert_eq!(ns.as_str(), text);
        assert!(
            (1..=MAX_NAMESPACE_LEN).contains(&text.len()),
            "namespace {text:?}"
        );
        assert!(!text.contains([':', '#', '/']), "namespace {text:?}");
    }
    if let Ok(scope) = Scope::parse(text) {
        assert_eq!(scope.as_str(), text);
        assert!((1..=MAX_SCOPE_LEN).contains(&text.len()), "scope {text:?}");
    }
    if let Ok(stamp) = Stamp::parse(text) {
        assert_eq!(stamp.to_string(), text, "stamp text");
    }
    if let Some(id) = BatchId::parse(text) {
        assert_eq!(id.as_str(), text, "batch id text");
    }

    if let Some((head, raw_key)) = text.split_once('/') {
        let (ns, scope) = match head.split_once('#') {
            Some((ns, scope)) => (ns, Some(scope)),
            None => (head, None),
        };
        let parsed = (|| {
            let scope = scope.map(Scope::parse).transpose()?;
            CacheKey::new(
                Namespace::parse(ns)?,
                ItemKey::from_path_segment(raw_key)?,
                scope,
            )
        })();
        if let Ok(ck) = parsed {
            check_cache_key(&ck);
            if scope.is_none() {
                assert_eq!(CacheKey::from_path(ns, raw_key).as_ref(), Ok(&ck));
            }
        }
    }

    if let Some(parsed) = KvKey::parse(text) {
        assert_eq!(parsed.render(), text, "KV key {parsed:?}");
        assert!(
            RecordKind::of(text).is_some(),
            "KV key {text:?} has no kind"
        );
        if let KvKey::Entry(ck) = &parsed {
            check_cache_key(ck);
        }
    }
}

/// Whether `segment` is RFC 3986 unreserved characters and `%XX` escapes with upper-case hex.
fn is_encoded_segment(segment: &str) -> bool {
    let mut bytes = segment.bytes();
    while let Some(b) = bytes.next() {
        let ok = if b == b'%' {
            let upper_hex =
                |b: Option<u8>| b.is_some_and(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'));
            upper_hex(bytes.next()) && upper_hex(bytes.next())
        } else {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Bytes after the preamble and header of an encoded envelope.
fn payload_len(bytes: &[u8]) -> usize {
    let header = bytes
        .get(4..8)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes);
    bytes
        .len()
        .saturating_sub(8)
        .saturating_sub(usize::try_from(header).unwrap_or(usize::MAX))
}

fn check_item_key(k: &ItemKey) {
    let s = k.as_str();
    assert!(
        (1..=MAX_ITEM_KEY_BYTES).contains(&s.len()),
        "item key of {} bytes",
        s.len()
    );
    assert!(!s.chars().any(char::is_control), "item key {s:?}");
    let segment = k.to_path_segment();
    assert!(is_encoded_segment(&segment), "segment {segment:?}");
    assert_eq!(
        ItemKey::from_path_segment(&segment).as_ref(),
        Ok(k),
        "path segment {segment:?}"
    );
    assert_eq!(ItemKey::parse(s).as_ref(), Ok(k));
}

fn check_cache_key(ck: &CacheKey) {
    check_item_key(ck.key());
    let kv = ck.kv_key();
    assert!(kv.len() <= MAX_KV_KEY_BYTES, "KV key of {} bytes", kv.len());
    assert_eq!(
        KvKey::parse(&kv),
        Some(KvKey::Entry(ck.clone())),
        "KV key {kv:?}"
    );
    let unscoped = ck.unscoped();
    assert_eq!(unscoped.scope(), None);
    assert_eq!((unscoped.ns(), unscoped.key()), (ck.ns(), ck.key()));
    if ck.scope().is_none() {
        assert_eq!(&unscoped, ck);
    }
}

/// JSON Merge Patch (RFC 7396): the input is two JSON texts one after the other, a target and
/// a patch. The result is what §2 specifies member by member, and applying the patch again
/// changes nothing.
pub fn merge_patch(data: &[u8]) {
    let mut values = serde_json::Deserializer::from_slice(data).into_iter::<Value>();
    let (Some(Ok(target)), Some(Ok(patch))) = (values.next(), values.next()) else {
        return;
    };
    let result = crate::serve::merge_patch::merge_patch(&target, &patch);
    check_merged(&target, &patch, &result);
    assert_eq!(
        crate::serve::merge_patch::merge_patch(&result, &patch),
        result,
        "applying {patch} twice"
    );
}

/// `result` is `patch` applied to `target`: a non-object patch replaces the target; an
/// object patch removes its `null` members, merges its other members recursively, and keeps
/// every member of an object target it does not name.
fn check_merged(target: &Value, patch: &Value, result: &Value) {
    let Value::Object(patch_members) = patch else {
        assert_eq!(result, patch, "a non-object patch replaces the target");
        return;
    };
    let Value::Object(members) = result else {
        panic!("an object patch gave {result}");
    };
    let empty = Map::new();
    let target_members = target.as_object().unwrap_or(&empty);
    for (name, value) in patch_members {
        match (value, members.get(name)) {
            (Value::Null, None) => {}
            (Value::Null, Some(kept)) => panic!("{name:?} is {kept} after a null patch"),
            (_, None) => panic!("{name:?} missing after the patch set it"),
            (_, Some(merged)) => check_merged(
                target_members.get(name).unwrap_or(&Value::Null),
                value,
                merged,
            ),
        }
    }
    for (name, value) in members {
        if !patch_members.contains_key(name) {
            assert_eq!(target_members.get(name), Some(value), "member {name:?}");
        }
    }
}

/// The DB API's answer to `POST /v1/batch`. Input: a status line, a `Retry-After` line, then
/// the body. The classification follows the status; an accepted answer has exactly the
/// results the body lists, and settling it against a sealed batch works when the counts
/// match and touches nothing when they do not.
pub fn batch_answer(data: &[u8]) {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let Some(status) = parts
        .next()
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.trim().parse::<u16>().ok())
    else {
        return;
    };
    let retry_after = parts.next().and_then(|s| std::str::from_utf8(s).ok());
    let body = parts.next().unwrap_or_default();

    let success = (200..=299).contains(&status);
    let retryable_status = matches!(status, 401 | 403 | 408 | 425 | 429 | 500..=599);
    let expected_retry_after = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs);
    match parse_batch_answer(status, retry_after, body) {
        Ok(answer) => {
            assert!(success, "status {status} accepted");
            let listed = listed_results(body);
            assert_eq!(listed, Some(answer.results.len()), "results in {body:?}");
            let again = serde_json::to_vec(&answer).expect("an answer serializes");
            assert_eq!(parse_batch_answer(200, None, &again).as_ref(), Ok(&answer));
            if answer.results.len() <= MAX_SETTLED_RESULTS {
                check_settle(&answer, answer.results.len());
                check_settle(&answer, answer.results.len() + 1);
                if let Some(fewer) = answer.results.len().checked_sub(1) {
                    check_settle(&answer, fewer);
                }
            }
        }
        Err(SendError::Retryable { retry_after, .. }) => {
            assert!(success || retryable_status, "status {status} retryable");
            assert_eq!(
                retry_after, expected_retry_after,
                "Retry-After {retry_after:?}"
            );
        }
        Err(SendError::Permanent { .. }) => {
            assert!(!success && !retryable_status, "status {status} permanent");
        }
    }
}

/// How many results a body lists, read with the answer's shape but without its types.
fn listed_results(body: &[u8]) -> Option<usize> {
    #[derive(serde::Deserialize)]
    struct Listed {
        results: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Listed>(body)
        .ok()
        .map(|l| l.results.len())
}

/// Settles `answer` against a sealed batch of `sent` writes, each with its buffer record and
/// a dirty cache entry showing it.
fn check_settle(answer: &BatchResponse, sent: usize) {
    let cfg = CacheConfig::with_db_api_url("http://127.0.0.1:3001").expect("a valid URL");
    let mut store = MemoryStore::new();
    let ns = Namespace::parse("fuzz").expect("a valid namespace");
    let mut items = Vec::with_capacity(sent);
    let mut entry_keys = Vec::with_capacity(sent);
    for i in 0..sent {
        let stamp = Stamp::new(UnixMillis(1_000 + i as u64), 0, 7);
        let write = BufferedWrite {
            ns: ns.clone(),
            key: ItemKey::parse(&format!("k{i}")).expect("a valid key"),
            value: Some(Value::from(i)),
            stamp,
            written_at: UnixMillis(1_000),
            subject: None,
        };
        let entry = Entry {
            kind: EntryKind::Value,
            value: i.to_string().into_bytes(),
            etag: None,
            version: stamp.version(),
            fetched_at: None,
            written_at: Some(UnixMillis(1_000)),
            fresh_until: UnixMillis(100_000),
            stale_until: UnixMillis(100_000),
            stale_if_error_until: UnixMillis(100_000),
            audience: Audience::Granted,
            dirty: Some(Dirty {
                stamp,
                since: UnixMillis(1_000),
            }),
            invalidated_at: None,
        };
        let entry_key = CacheKey::new(ns.clone(), write.key.clone(), None)
            .expect("a short key")
            .kv_key();
        let stored = envelope::encode(&entry, &cfg.codec_policy()).expect("a small entry");
        let record = write.encode().expect("a small record");
        store.set(&entry_key, &stored).expect("memory store");
        store.set(&write.kv_key(), &record).expect("memory store");
        entry_keys.push(entry_key);
        items.push(Coalesced {
            winner: write,
            covers: vec![stamp],
        });
    }
    let batch = SealedBatch::new(items, UnixMillis(2_000));
    let sealed = batch.encode().expect("a small batch");
    store.set(&batch.kv_key(), &sealed).expect("memory store");
    let before = store.clone();

    let mut tally = Tally::default();
    let settled = settle_answer(
        &mut store,
        &mut TestClock::at(UnixMillis(3_000)),
        &batch,
        answer,
        UnixMillis(3_000),
        &cfg,
        &mut tally,
    )
    .expect("the memory store does not fail");
    let answered = answer.results.len();
    if answered != sent {
        assert_eq!(settled, Settled::Mismatch { sent, answered });
        assert_eq!(tally, Tally::default());
        assert_eq!(
            snapshot(&store),
            snapshot(&before),
            "a mismatch touched the store"
        );
        return;
    }
    assert_eq!(settled, Settled::Done);
    assert!(
        store.keys_with_prefix("w:").is_empty(),
        "buffer records left"
    );
    assert!(store.keys_with_prefix("b:").is_empty(), "sealed batch left");
    let refused = answer
        .results
        .iter()
        .filter(|r| matches!(r.status, ItemStatus::Conflict | ItemStatus::Rejected))
        .count();
    assert_eq!(store.keys_with_prefix("d:").len(), refused, "dead letters");
    assert_eq!(
        tally.applied + tally.stale + tally.duplicate + tally.dead_lettered,
        sent
    );
    assert_eq!(tally.dead_lettered, refused);
    assert_eq!(tally.records_deleted, sent);
    for (result, entry_key) in answer.results.iter().zip(&entry_keys) {
        let entry = store.peek(entry_key).map(envelope::decode);
        match result.status {
            ItemStatus::Applied | ItemStatus::Stale | ItemStatus::Duplicate => match entry {
                Some(Ok(e)) => assert_eq!(e.dirty, None, "{entry_key} still dirty"),
                other => panic!("{entry_key} after an applied write: {other:?}"),
            },
            ItemStatus::Conflict | ItemStatus::Rejected => {
                assert!(entry.is_none(), "{entry_key} kept after a refused write");
            }
        }
    }
}

fn snapshot(store: &MemoryStore) -> Vec<(String, Vec<u8>)> {
    store
        .keys_with_prefix("")
        .into_iter()
        .map(|k| {
            let v = store.peek(&k).unwrap_or_default().to_vec();
            (k, v)
        })
        .collect()
}

/// The stored records other than envelopes: buffered writes (`w:`), sealed batches (`b:`),
/// dead letters (`d:`), the flush state and the two leases (`m:`). Each decoder returns
/// instead of panicking, and whatever it accepts re-encodes and decodes to the same record.
pub fn record(data: &[u8]) {
    if let Ok(write) = BufferedWrite::decode(data) {
        check_write(&write);
        match write.encode() {
            Ok(bytes) => {
                assert!(bytes.starts_with(b"{\"v\":1,"), "format version first");
                assert_eq!(BufferedWrite::decode(&bytes).as_ref(), Ok(&write));
            }
            Err(e) => check_too_large(&e),
        }
    }
    if let Ok(batch) = SealedBatch::decode(data) {
        assert_eq!(
            KvKey::parse(&batch.kv_key()),
            Some(KvKey::Batch(batch.id.clone()))
        );
        let request = batch.request();
        assert_eq!(request.batch_id, batch.id.as_str());
        assert_eq!(request.writes.len(), batch.items.len());
        for item in &batch.items {
            check_write(&item.winner);
        }
        match batch.encode() {
            Ok(bytes) => assert_eq!(SealedBatch::decode(&bytes).as_ref(), Ok(&batch)),
            Err(e) => check_too_large(&e),
        }
    }
    if let Ok(letter) = DeadLetter::decode(data) {
        assert_eq!(
            KvKey::parse(&letter.kv_key()),
            Some(KvKey::DeadLetter(letter.stamp))
        );
        if let Some(write) = &letter.write {
            check_write(write);
        }
        let bytes = letter.encode().expect("a dead letter encodes");
        assert_eq!(DeadLetter::decode(&bytes).as_ref(), Ok(&letter));
    }
    if let Some(lease) = fill::decode(data) {
        assert_eq!(fill::decode(&fill::encode(&lease)), Some(lease));
    }

    let mut store = MemoryStore::new();
    store
        .set(&KvKey::FlushState.render(), data)
        .expect("memory store");
    store
        .set(&KvKey::Lease.render(), data)
        .expect("memory store");
    let state = FlushState::load(&mut store).expect("memory store");
    let _ = lease::current(&mut store).expect("memory store");
    state.save(&mut store).expect("memory store");
    assert_eq!(FlushState::load(&mut store), Ok(state), "flush state");
}

fn check_write(write: &BufferedWrite) {
    assert_eq!(write.value.is_some(), write.op() == WriteOp::Put);
    assert_eq!(
        KvKey::parse(&write.kv_key()),
        Some(KvKey::Write(write.stamp))
    );
    let wire = write.to_batch_write();
    assert_eq!(wire.version, write.stamp.version());
    assert_eq!(
        (wire.ns.as_str(), wire.key.as_str()),
        (write.ns.as_str(), write.key.as_str())
    );
    assert_eq!(wire.value, write.value);
}

fn check_too_large(e: &RecordError) {
    match e {
        RecordError::TooLarge(n) => assert!(*n > MAX_KV_VALUE_BYTES, "{n} bytes refused"),
        other => panic!("a decoded record does not re-encode: {other}"),
    }
}
