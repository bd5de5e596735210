use super::*;
use proptest::prelude::*;

fn entry(value: &[u8]) -> Entry {
    Entry {
        kind: EntryKind::Value,
        value: value.to_vec(),
        etag: Some("\"v1\"".into()),
        version: 7,
        fetched_at: Some(UnixMillis(1_000)),
        written_at: None,
        fresh_until: UnixMillis(61_000),
        stale_until: UnixMillis(361_000),
        stale_if_error_until: UnixMillis(3_661_000),
        audience: Audience::Anyone,
        dirty: Some(Dirty {
            stamp: Stamp::new(UnixMillis(900), 1, 5),
            since: UnixMillis(900),
        }),
        invalidated_at: None,
    }
}

const POLICY: CodecPolicy = CodecPolicy {
    compress_min_bytes: 64,
};

#[test]
fn large_compressible_values_are_deflated_and_small_ones_are_not() {
    let big = format!("[{}0]", "1,".repeat(500));
    let cases: &[(&[u8], Codec)] = &[
        (b"{}", Codec::Identity),
        (big.as_bytes(), Codec::Deflate),
        (&[0x5a; 63], Codec::Identity),
    ];
    for (value, codec) in cases {
        let bytes = encode(&entry(value), &POLICY).unwrap();
        assert_eq!(codec_of(&bytes), Ok(*codec), "{} bytes", value.len());
        assert_eq!(decode(&bytes).unwrap(), entry(value));
    }
}

fn check_decode(mutate: fn(&mut Vec<u8>), expected: EnvelopeError) {
    let mut bytes = encode(&entry(b"{\"a\":1}"), &POLICY).unwrap();
    mutate(&mut bytes);
    assert_eq!(decode(&bytes), Err(expected));
}

type Mutation = fn(&mut Vec<u8>);

#[test]
fn damaged_values_are_typed_errors() {
    let cases: &[(Mutation, EnvelopeError)] = &[
        (|b| b.truncate(5), EnvelopeError::Truncated),
        (|b| b.truncate(20), EnvelopeError::Truncated),
        (|b| b[0] = b'X', EnvelopeError::BadMagic),
        (|b| b[2] = 9, EnvelopeError::UnknownVersion(9)),
        (|b| b[3] = 7, EnvelopeError::UnknownCodec(7)),
        (
            |b| {
                b.pop();
            },
            EnvelopeError::Checksum,
        ),
        (
            |b| {
                let n = b.len() - 1;
                b[n] ^= 1;
            },
            EnvelopeError::Checksum,
        ),
    ];
    for (mutate, expected) in cases {
        check_decode(*mutate, expected.clone());
    }
    assert!(matches!(
        decode(b"CE\x01\x00\x00\x00\x00\x02{]"),
        Err(EnvelopeError::Header(_))
    ));
}

#[test]
fn oversized_entries_and_etags_are_refused() {
    let mut e = entry(&[b'x'; MAX_KV_VALUE_BYTES + 1]);
    assert!(matches!(
        encode(&e, &POLICY),
        Err(EnvelopeError::TooLarge { .. })
    ));
    let mut seed = 1u64;
    let noise: Vec<u8> = (0..MAX_KV_VALUE_BYTES - 100)
        .map(|_| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 56) as u8
        })
        .collect();
    e.value = noise;
    assert!(matches!(
        encode(&e, &POLICY),
        Err(EnvelopeError::TooLarge { .. })
    ));
    e.value = b"1".to_vec();
    e.etag = Some("e".repeat(MAX_ETAG_BYTES + 1));
    assert_eq!(encode(&e, &POLICY), Err(EnvelopeError::EtagTooLong));
}

fn any_entry() -> impl Strategy<Value = Entry> {
    let value = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        (any::<u8>(), 0usize..4096).prop_map(|(b, n)| vec![b; n]),
    ];
    let kind = prop_oneof![
        Just(EntryKind::Value),
        Just(EntryKind::Absent),
        Just(EntryKind::Tombstone)
    ];
    let dirty = proptest::option::of(
        (any::<u64>(), any::<u16>(), any::<u64>(), any::<u64>()).prop_map(|(m, s, i, since)| {
            Dirty {
                stamp: Stamp::new(UnixMillis(m), s, i),
                since: UnixMillis(since),
            }
        }),
    );
    let times = (
        any::<Option<u64>>(),
        any::<Option<u64>>(),
        any::<[u64; 3]>(),
    );
    (
        kind,
        value,
        proptest::option::of("[ -~]{0,40}"),
        any::<u64>(),
        times,
        dirty,
    )
        .prop_map(
            |(kind, value, etag, version, (fetched, written, [f, s, e]), dirty)| Entry {
                kind,
                value,
                etag,
                version,
                fetched_at: fetched.map(UnixMillis),
                written_at: written.map(UnixMillis),
                fresh_until: UnixMillis(f),
                stale_until: UnixMillis(s),
                stale_if_error_until: UnixMillis(e),
                audience: [Audience::Anyone, Audience::Granted, Audience::Caller]
                    [(version % 3) as usize],
                dirty,
                invalidated_at: (version % 5 == 0).then_some(UnixMillis(f)),
            },
        )
}

proptest! {
    #[test]
    fn every_entry_round_trips_with_either_codec(e in any_entry(), min in prop_oneof![Just(0usize), Just(usize::MAX), 0usize..3000]) {
        let bytes = encode(&e, &CodecPolicy { compress_min_bytes: min }).unwrap();
        prop_assert_eq!(decode(&bytes).unwrap(), e);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_damaged_envelopes(e in any_entry(), at in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = encode(&e, &POLICY).unwrap();
        let i = at % bytes.len();
        bytes[i] = byte;
        let _ = decode(&bytes);
        bytes.truncate(i);
        prop_assert!(decode(&bytes).is_err());
    }
}
