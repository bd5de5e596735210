use super::*;
use crate::entry::Dirty;
use crate::envelope::{encode, CodecPolicy};
use crate::stamp::Stamp;

const T0: u64 = 1_700_000_000_000;

fn cfg() -> CacheConfig {
    CacheConfig::with_db_api_url("http://db").unwrap()
}

fn fetched(kind: EntryKind, value: &str) -> Entry {
    match apply_origin(
        None,
        if kind == EntryKind::Value {
            OriginAnswer::Found {
                value: value.as_bytes().to_vec(),
                etag: Some("\"e\"".into()),
                version: Some(3),
            }
        } else {
            OriginAnswer::NotFound
        },
        &Directives::default(),
        Audience::Anyone,
        UnixMillis(T0),
        &cfg(),
    ) {
        OriginApply::Store(e) => e,
        other => panic!("not stored: {other:?}"),
    }
}

fn dirty(mut e: Entry) -> Entry {
    e.dirty = Some(Dirty {
        stamp: Stamp::new(UnixMillis(T0), 0, 1),
        since: UnixMillis(T0),
    });
    e
}

#[derive(Debug, PartialEq)]
enum Plan {
    Serve,
    ServeAndRevalidate,
    Fetch { fallback: bool },
}

fn check(stored: Option<&Entry>, at_secs: u64, expected: Plan) {
    let bytes = stored.map(|e| {
        encode(
            e,
            &CodecPolicy {
                compress_min_bytes: 0,
            },
        )
        .unwrap()
    });
    let got = match plan_read(bytes.as_deref(), UnixMillis(T0 + at_secs * 1000), None) {
        ReadPlan::Serve(_) => Plan::Serve,
        ReadPlan::ServeAndRevalidate(_) => Plan::ServeAndRevalidate,
        ReadPlan::Fetch { fallback, .. } => Plan::Fetch {
            fallback: fallback.is_some(),
        },
    };
    assert_eq!(got, expected, "{stored:?} at +{at_secs}s");
}

#[test]
fn read_plan_follows_freshness_and_dirty_entries_are_always_served() {
    let value = fetched(EntryKind::Value, "{\"a\":1}");
    let absent = fetched(EntryKind::Absent, "");
    let cases: Vec<(Option<&Entry>, u64, Plan)> = vec![
        (None, 0, Plan::Fetch { fallback: false }),
        (Some(&value), 0, Plan::Serve),
        (Some(&value), 59, Plan::Serve),
        (Some(&value), 60, Plan::ServeAndRevalidate),
        (Some(&value), 359, Plan::ServeAndRevalidate),
        (Some(&value), 360, Plan::Fetch { fallback: true }),
        (Some(&value), 3660, Plan::Fetch { fallback: false }),
        (Some(&absent), 29, Plan::Serve),
        (Some(&absent), 30, Plan::Fetch { fallback: false }),
    ];
    for (stored, at, expected) in cases {
        check(stored, at, expected);
    }
    let dirty_value = dirty(value);
    for at in [0, 60, 360, 1_000_000] {
        check(Some(&dirty_value), at, Plan::Serve);
    }
}

#[test]
fn corrupt_entry_is_a_miss_to_overwrite() {
    for garbage in [&b"garbage"[..], b"", &[1, 0xff, 0xff]] {
        let plan = plan_read(Some(garbage), UnixMillis(T0), None);
        assert_eq!(
            plan,
            ReadPlan::Fetch {
                fallback: None,
                invalidated_at: None
            },
            "{garbage:?}"
        );
    }
}

#[test]
fn origin_answers_never_replace_dirty_entries() {
    let current = dirty(fetched(EntryKind::Value, "1"));
    for origin in [
        OriginAnswer::NotFound,
        OriginAnswer::NotModified,
        OriginAnswer::Found {
            value: b"2".to_vec(),
            etag: None,
            version: None,
        },
    ] {
        assert_eq!(
            apply_origin(
                Some(&current),
                origin,
                &Directives::default(),
                Audience::Anyone,
                UnixMillis(T0),
                &cfg()
            ),
            OriginApply::Skip(SkipReason::Dirty)
        );
    }
}

#[test]
fn origin_answers_are_stored_with_fresh_windows() {
    let cfg = cfg();
    let later = UnixMillis(T0 + 100_000);
    let current = fetched(EntryKind::Value, "1");
    let OriginApply::Store(refreshed) = apply_origin(
        Some(&current),
        OriginAnswer::NotModified,
        &Directives::default(),
        Audience::Anyone,
        later,
        &cfg,
    ) else {
        panic!("304 should refresh");
    };
    assert_eq!(refreshed.value, b"1");
    assert_eq!(refreshed.fresh_until, UnixMillis(T0 + 160_000));
    assert_eq!(
        apply_origin(
            None,
            OriginAnswer::NotModified,
            &Directives::default(),
            Audience::Anyone,
            later,
            &cfg
        ),
        OriginApply::Skip(SkipReason::NothingToRefresh)
    );

    let big = vec![b'1'; cfg.max_value_bytes + 1];
    let found = OriginAnswer::Found {
        value: big,
        etag: None,
        version: None,
    };
    let OriginApply::ServeUnstored(e) = apply_origin(
        None,
        found,
        &Directives::default(),
        Audience::Anyone,
        later,
        &cfg,
    ) else {
        panic!("should serve without storing")
    };
    assert_eq!((e.fresh_until, e.stale_if_error_until), (later, later));

    let long_etag = OriginAnswer::Found {
        value: b"1".to_vec(),
        etag: Some("x".repeat(MAX_ETAG_BYTES + 1)),
        version: Some(9),
    };
    let OriginApply::Store(e) = apply_origin(
        None,
        long_etag,
        &Directives::default(),
        Audience::Anyone,
        later,
        &cfg,
    ) else {
        panic!("should store")
    };
    assert_eq!((e.etag, e.version, e.kind), (None, 9, EntryKind::Value));
}

#[test]
fn origin_directives_shorten_windows_and_the_audience_is_recorded() {
    let cfg = cfg();
    let found = OriginAnswer::Found {
        value: b"1".to_vec(),
        etag: None,
        version: None,
    };
    let d = Directives::parse(Some("private, max-age=5, stale-while-revalidate=1"), None);
    let OriginApply::Store(e) =
        apply_origin(None, found, &d, Audience::Caller, UnixMillis(T0), &cfg)
    else {
        panic!("should store")
    };
    assert_eq!(e.audience, Audience::Caller);
    assert_eq!(e.fresh_until, UnixMillis(T0 + 5_000));
    assert_eq!(e.stale_until, UnixMillis(T0 + 6_000));
    assert_eq!(e.stale_if_error_until, UnixMillis(T0 + 5_000 + 3_600_000));
}
