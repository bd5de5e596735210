//! Figure 11, auth: what access control costs a cache hit, and what keeping answers per
//! caller costs the hit rate, each beside the same reads without it, in the same run.
//!
//! The figure has a DB API of its own with auth on (the other figures' DB API runs with auth
//! off, and they stay as they were): `alice` with her demo token, 20 users `u01`…`u20`, the
//! access rules of [`ACL`] and the test JWT issuer. Four hosts share it, each with a 1 h
//! `ttl` so that nothing goes stale during the figure:
//!
//! - **no auth**: figure 1's configuration (no `auth_key`, `origin` mode), read anonymously
//!   on a `public` key: a shared entry, one KV `get` per hit. The baseline of the hit rows.
//! - **origin**, `auth_key` set: alice reads `sessions/alice:1`, which the DB API answers
//!   `private`: kept for her alone, one more `get` per hit (the shared entry is looked at
//!   first).
//! - **grant**, `auth_key` set: the same read; the answer is kept shared, behind a read grant
//!   per caller: one or two more `get`s per hit (the grant's window and the one before).
//! - **jwt**, `auth_key` set (without it a `private` answer is kept nowhere) and
//!   `auth_rules` with `sessions` owner-only: the same read with a token of the DB API's
//!   issuer, once per algorithm (ES256, RS256, HS256): the signature check at the edge, then
//!   the subject's own entry.
//!
//! Hit latency: each configuration is filled once, then measured with the closed-loop
//! generator in interleaved 1 s rounds (each configuration once per round; two rounds, one
//! with `--quick`), so that a change in the machine's load during the figure falls on all of
//! them alike. Every measured answer
//! should be a `200` with `X-Cache: HIT`; the rows say how many were, and any that were not.
//!
//! Hit rate: 20 callers take turns reading Zipf(1.0)-distributed keys of one 1,000-key space,
//! from a cold start, three times: in a namespace anyone may read (the DB API answers
//! `public`: one shared entry per key, the baseline), in one only signed-in users may read
//! (`private`: in `origin` mode, one entry per caller and key), and the latter again in
//! `grant` mode (one shared entry per key, but a read grant per caller and key, each
//! obtained with a conditional GET to the DB API and kept the default `grant_ttl`, 60 s,
//! longer than a pass). The DB API counts the origin reads (a grant check's `304` is one);
//! each pass is compared with the cold-start bound of its parameters, one origin read per
//! distinct key (shared) or distinct (caller, key) pair (per caller).

use std::ffi::OsString;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use bytes::Bytes;

use super::{offload, Ctx, WARM_UP};
use crate::client::DbControl;
use crate::load::{self, MakeReq, Outcome, Plan, Req, Stop};
use crate::procs::{Bins, DbApi, Host};
use crate::report::{div, ms, ratio, Row};
use crate::zipf::Zipf;

const FIG: &str = "11 auth";
/// The cache's service token on the figure's DB API.
const SERVICE_TOKEN: &str = "bench-service-token-0123456789";
/// The hosts' `auth_key` (loopback only).
const AUTH_KEY: &str = "bench-auth-key-0123456789";
/// alice's demo token.
const ALICE: &str = "demo-token-for-alice";
/// The DB API's access rules: the demo rules for `sessions` and `public`, and the two
/// namespaces of the hit-rate passes.
const ACL: &str = r#"{"sessions":{"read":"owner","write":"owner"},"public":{"read":"anyone","write":"signed-in"},"pub":{"read":"anyone","write":"signed-in"},"priv":{"read":"signed-in","write":"owner"},"*":{"read":"owner","write":"owner"}}"#;
/// The jwt host's `auth_rules`.
const RULES: &str = r#"{"sessions":{"read":"owner","write":"owner"},"public":{"read":"anyone","write":"signed-in"}}"#;
/// Callers of the hit-rate passes.
const USERS: usize = 20;
/// Keys of the hit-rate passes.
const KEYS: usize = 1_000;
/// The Zipf exponent.
const S: f64 = 1.0;
/// Connections of the hit windows (as figure 1).
const HIT_CONNECTIONS: usize = 2;
/// Connections of the hit-rate passes.
const ZIPF_CONNECTIONS: usize = 4;
/// Every host's `ttl`: longer than the figure.
const TTL: &str = "1h";
/// Lifetime of the JWTs: longer than the figure.
const JWT_TTL_SECS: i64 = 3600;
/// Signing algorithms measured in `jwt` mode.
const ALGS: [&str; 3] = ["ES256", "RS256", "HS256"];

/// The variables of a benchmark host for a DB API URL, plus extra ones.
pub type Vars = fn(&str, &[(&str, &str)]) -> Vec<(String, String)>;

/// What the figure needs besides [`Ctx`]: how to start hosts like the other figures'.
pub struct Env<'a> {
    /// The release binaries.
    pub bins: &'a Bins,
    /// The benchmark's manifest.
    pub manifest: &'a Path,
    /// The run's scratch directory.
    pub scratch: &'a Path,
    /// The other figures' host variables.
    pub vars: Vars,
}

/// One configuration of the hit rows.
struct Probe {
    /// Row label.
    label: String,
    /// Summary label, for the rows shown in the README.
    headline: Option<String>,
    host: String,
    path: String,
    authorization: Option<String>,
}

fn user_token(i: usize) -> String {
    format!("bench-token-for-u{i:02}")
}

/// Measures the figure.
pub async fn run(ctx: &Ctx<'_>, env: &Env<'_>) -> Result<Vec<Row>> {
    let dir = env.scratch.join("auth");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut users = serde_json::Map::new();
    users.insert("alice".into(), ALICE.into());
    for i in 1..=USERS {
        users.insert(format!("u{i:02}"), user_token(i).into());
    }
    let users_file = dir.join("users.json");
    std::fs::write(&users_file, serde_json::Value::Object(users).to_string())?;
    let acl_file = dir.join("acl.json");
    std::fs::write(&acl_file, ACL)?;
    let args: Vec<OsString> = vec![
        "--auth".into(),
        "on".into(),
        "--token".into(),
        SERVICE_TOKEN.into(),
        "--users".into(),
        users_file.into(),
        "--acl".into(),
        acl_file.into(),
    ];
    let db = DbApi::start_with(env.bins, ctx.http, &args).await?;
    let control = DbControl {
        http: ctx.http,
        url: &db.url,
    };
    control.seed("sessions", "alice:", 2, 256).await?;
    control.seed("public", "key-", 10, 256).await?;
    control.seed("pub", "key-", KEYS as u64, 256).await?;
    control.seed("priv", "key-", KEYS as u64, 256).await?;

    let jwks = ctx.http.get(&format!("{}/_jwks", db.url)).await?;
    ensure!(jwks.status == 200, "GET /_jwks answered {}", jwks.status);
    let jwks = String::from_utf8(jwks.body.to_vec()).context("the JWKS is not UTF-8")?;
    let mut tokens = Vec::new();
    for alg in ALGS {
        let issued = ctx
            .http
            .post_json(
                &format!("{}/_jwt", db.url),
                &[],
                &serde_json::json!({"sub": "alice", "alg": alg, "ttl_secs": JWT_TTL_SECS}),
            )
            .await?;
        let token = issued["token"]
            .as_str()
            .ok_or_else(|| anyhow!("POST /_jwt answered no token"))?;
        tokens.push((alg, token.to_owned()));
    }

    let common = [("ttl", TTL), ("db_api_token", SERVICE_TOKEN)];
    let with = |extra: &[(&str, &str)]| {
        let all: Vec<(&str, &str)> = common.iter().chain(extra).copied().collect();
        (env.vars)(&db.url, &all)
    };
    let start = |name: &str, vars: Vec<(String, String)>| {
        let state = dir.join(format!("state-{name}"));
        async move { Host::start(env.bins, ctx.http, env.manifest, &state, &vars).await }
    };
    let (none, origin, grant, jwt) = tokio::try_join!(
        start("none", with(&[])),
        start("origin", with(&[("auth_key", AUTH_KEY)])),
        start(
            "grant",
            with(&[("auth_mode", "grant"), ("auth_key", AUTH_KEY)])
        ),
        start(
            "jwt",
            with(&[
                ("auth_mode", "jwt"),
                ("auth_key", AUTH_KEY),
                ("jwt_jwks", &jwks),
                ("jwt_issuer", "cache-sync-db-api"),
                ("jwt_audience", "cache-sync"),
                ("auth_rules", RULES),
            ])
        ),
    )?;

    let mut rows = hit_rows(ctx, &none, &origin, &grant, &jwt, &tokens).await?;
    rows.extend(rate_rows(ctx, &control, &origin, &grant).await?);
    Ok(rows)
}

async fn hit_rows(
    ctx: &Ctx<'_>,
    none: &Host,
    origin: &Host,
    grant: &Host,
    jwt: &Host,
    tokens: &[(&str, String)],
) -> Result<Vec<Row>> {
    let own = "/v1/sessions/alice:1".to_owned();
    let alice = Some(format!("Bearer {ALICE}"));
    let mut probes = vec![
        Probe {
            label: "no auth: anonymous read of a `public` key (shared entry; host without `auth_key`)".into(),
            headline: None,
            host: none.url.clone(),
            path: "/v1/public/key-1".into(),
            authorization: None,
        },
        Probe {
            label: "`auth_mode=origin`: alice reads her `sessions/alice:1`, answered `private` (her own entry: one more KV get)".into(),
            headline: Some("hit p50, origin mode (the caller's own entry) vs without auth".into()),
            host: origin.url.clone(),
            path: own.clone(),
            authorization: alice.clone(),
        },
        Probe {
            label: "`auth_mode=grant`: alice reads `sessions/alice:1` (a shared entry behind her read grant: one or two more KV gets)".into(),
            headline: Some("hit p50, grant mode (a shared entry behind a grant) vs without auth".into()),
            host: grant.url.clone(),
            path: own.clone(),
            authorization: alice,
        },
    ];
    for (alg, token) in tokens {
        probes.push(Probe {
            label: format!(
                "`auth_mode=jwt`, {alg} token: alice reads `sessions/alice:1` (signature check, owner rule, her own entry)"
            ),
            headline: (*alg == "ES256")
                .then(|| "hit p50, jwt mode, ES256 token (verified at the edge) vs without auth".into()),
            host: jwt.url.clone(),
            path: own.clone(),
            authorization: Some(format!("Bearer {token}")),
        });
    }

    // Fill each configuration once.
    for p in &probes {
        let headers: Vec<(&str, &str)> = p
            .authorization
            .iter()
            .map(|a| ("authorization", a.as_str()))
            .collect();
        let r = ctx
            .http
            .send(
                "GET",
                &format!("{}{}", p.host, p.path),
                &headers,
                Bytes::new(),
            )
            .await?;
        ensure!(
            r.status == 200,
            "filling {} for {}: {} {}",
            p.path,
            p.label,
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }

    let rounds: u32 = if ctx.quick { 1 } else { 2 };
    let window = Duration::from_secs(1);
    let mut outcomes: Vec<Option<Outcome>> = probes.iter().map(|_| None).collect();
    for _ in 0..rounds {
        for (p, merged) in probes.iter().zip(outcomes.iter_mut()) {
            let out = warm_load(p, Stop::After(window)).await?;
            match merged {
                Some(m) => merge(m, out)?,
                None => *merged = Some(out),
            }
        }
    }
    let outcomes: Vec<Outcome> = outcomes.into_iter().flatten().collect();
    ensure!(
        outcomes.len() == probes.len(),
        "a hit configuration was not measured"
    );

    let base = &outcomes[0];
    let base_p50 = base.pct_ms(50.0);
    let base_text = format!("{} (p99 {}), no auth", ms(base_p50), ms(base.pct_ms(99.0)));
    let span = format!(
        "{rounds} interleaved round(s) of {} ms, {HIT_CONNECTIONS} connections",
        window.as_millis()
    );
    let mut rows = vec![Row::info(
        FIG,
        format!(
            "hit p50 without auth, the baseline of the hit rows: {} ({span})",
            probes[0].label
        ),
        format!(
            "{} (p99 {}; {:.0} req/s; {})",
            ms(base_p50),
            ms(base.pct_ms(99.0)),
            base.rps(),
            answers(base)
        ),
        "-",
        None,
    )];
    for (p, o) in probes.iter().zip(&outcomes).skip(1) {
        let p50 = o.pct_ms(50.0);
        let x = div(p50, base_p50);
        let mut row = Row::info(
            FIG,
            format!("hit p50 with auth vs without: {}", p.label),
            format!(
                "{} (p99 {}; {:.0} req/s; {})",
                ms(p50),
                ms(o.pct_ms(99.0)),
                o.rps(),
                answers(o)
            ),
            base_text.clone(),
            Some(x),
        );
        if let Some(h) = &p.headline {
            row = row.headline_as(
                h.clone(),
                format!("{} vs {}: {}", ms(p50), ms(base_p50), ratio(x)),
            );
        }
        rows.push(row);
    }
    Ok(rows)
}

/// A closed-loop run of the probe's GET after [`WARM_UP`] unrecorded requests.
async fn warm_load(p: &Probe, stop: Stop) -> Result<Outcome> {
    let path = p.path.clone();
    let auth = p.authorization.clone();
    let make: MakeReq = Arc::new(move |_| {
        let mut r = Req::get(path.clone());
        if let Some(a) = &auth {
            r.headers.push(("authorization", a.clone()));
        }
        r
    });
    let plan = |stop| Plan {
        authority: load::authority(&p.host).to_owned(),
        connections: HIT_CONNECTIONS,
        stop,
        make: make.clone(),
        seed: 1,
    };
    load::run(plan(Stop::Requests(WARM_UP))).await?;
    load::run(plan(stop)).await
}

/// Adds `more` to `into`.
fn merge(into: &mut Outcome, more: Outcome) -> Result<()> {
    into.hist
        .add(&more.hist)
        .map_err(|e| anyhow!("histogram merge: {e}"))?;
    into.elapsed += more.elapsed;
    for (k, v) in more.statuses {
        *into.statuses.entry(k).or_default() += v;
    }
    for (k, v) in more.cache {
        *into.cache.entry(k).or_default() += v;
    }
    Ok(())
}

/// `3012 answers, all 200 HIT`, or what else came back.
fn answers(o: &Outcome) -> String {
    let n = o.count();
    let ok = o.statuses.get(&200).copied().unwrap_or(0);
    let hits = o.cache_count("HIT");
    if ok == n && hits == n {
        format!("{n} answers, all 200 HIT")
    } else {
        format!(
            "{n} answers, at least {} not 200 HIT: status {:?}, X-Cache {:?}",
            n - ok.min(hits),
            o.statuses,
            o.cache
        )
    }
}

/// One hit-rate pass: what the clients saw and the origin reads it caused.
struct Pass {
    out: Outcome,
    origin: u64,
}

impl Pass {
    fn hit_rate(&self) -> f64 {
        div(self.out.cache_count("HIT") as f64, self.out.count() as f64)
    }

    fn origin_per_read(&self) -> f64 {
        div(self.origin as f64, self.out.count() as f64)
    }

    fn misses(&self) -> u64 {
        self.out.cache_count("MISS")
    }
}

/// Zipf reads of `ns` on `host` by the [`USERS`] callers in turn, from a cold start.
async fn pass(
    control: &DbControl<'_>,
    host: &Host,
    ns: &'static str,
    zipf: &Arc<Zipf>,
    requests: u64,
) -> Result<Pass> {
    let bearers: Arc<Vec<String>> = Arc::new(
        (1..=USERS)
            .map(|i| format!("Bearer {}", user_token(i)))
            .collect(),
    );
    let turn = Arc::new(AtomicU64::new(0));
    let z = zipf.clone();
    let make: MakeReq = Arc::new(move |rng| {
        let user = turn.fetch_add(1, Ordering::Relaxed) as usize % bearers.len();
        let mut r = Req::get(format!("/v1/{ns}/key-{}", z.sample(rng)));
        r.headers.push(("authorization", bearers[user].clone()));
        r
    });
    let what = format!("{ns} pass");
    let (out, origin) =
        offload::counted_run(control, &host.url, ZIPF_CONNECTIONS, requests, make, &what).await?;
    Ok(Pass { out, origin })
}

/// Keys in the host's KV file matching the SQL `LIKE` pattern.
fn stored(host: &Host, pattern: &str) -> Result<u64> {
    let path = host.state_dir.join("sqlite_key_value.db");
    let db = rusqlite::Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", path.display()))?;
    let n: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM spin_key_value WHERE key LIKE ?1",
            [pattern],
            |r| r.get(0),
        )
        .context("cannot read spin_key_value")?;
    Ok(n.max(0) as u64)
}

fn pct(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

async fn rate_rows(
    ctx: &Ctx<'_>,
    control: &DbControl<'_>,
    origin: &Host,
    grant: &Host,
) -> Result<Vec<Row>> {
    let requests: u64 = if ctx.quick { 2_000 } else { 6_000 };
    let zipf = Arc::new(Zipf::new(KEYS, S));
    let shared = pass(control, origin, "pub", &zipf, requests).await?;
    let shared_entries = stored(origin, "c:pub:%")?;
    let private = pass(control, origin, "priv", &zipf, requests).await?;
    let private_entries = stored(origin, "c:priv#%")?;
    let granted = pass(control, grant, "priv", &zipf, requests).await?;
    let granted_entries = stored(grant, "c:priv:%")?;
    let grants = stored(grant, "m:grant:%")?;

    // Cold-start bounds from the same parameters: every distinct key (shared) or distinct
    // (caller, key) pair (per caller) costs one origin read, whatever the TTL.
    let sent = shared.out.count();
    let distinct_keys = zipf.expected_distinct(sent);
    let distinct_pairs = USERS as f64 * zipf.expected_distinct(sent / USERS as u64);
    let mix = format!(
        "Zipf s={S:.1} over {KEYS} keys, {USERS} callers in turn, {requests} reads from a cold start"
    );
    let shared_text = format!(
        "{} hits, {:.3} origin reads per client read (shared entries)",
        pct(shared.hit_rate()),
        shared.origin_per_read()
    );
    let grant_checks = granted.origin.saturating_sub(granted.misses());
    let rows = vec![
        Row::info(
            FIG,
            format!("hit rate, shared entries, the baseline of the hit-rate rows: a namespace anyone may read, answered `public` (`origin` mode; {mix})"),
            format!(
                "{} hits, {:.3} origin reads per client read ({} reads, {} origin reads; {shared_entries} entries stored)",
                pct(shared.hit_rate()),
                shared.origin_per_read(),
                shared.out.count(),
                shared.origin
            ),
            format!(
                "cold-start bound: {distinct_keys:.0} distinct keys expected, ≥ {:.3} origin reads per client read",
                distinct_keys / sent as f64
            ),
            Some(div(shared.origin_per_read(), distinct_keys / sent as f64)),
        ),
        Row::info(
            FIG,
            "hit rate, per-caller entries vs shared: a namespace only signed-in users may read, answered `private` (`origin` mode: one entry per caller and key)",
            format!("{} hits ({})", pct(private.hit_rate()), cache_mix(&private.out)),
            shared_text.clone(),
            Some(div(private.hit_rate(), shared.hit_rate())),
        )
        .headline_as(
            format!("{USERS} callers, Zipf over {KEYS} keys, cold start: hit rate, per-caller entries (`private`, origin mode) vs shared (`public`)"),
            format!(
                "{} vs {}: {}",
                pct(private.hit_rate()),
                pct(shared.hit_rate()),
                ratio(div(private.hit_rate(), shared.hit_rate()))
            ),
        ),
        Row::info(
            FIG,
            "origin reads per client read, per-caller entries vs shared (`private`, `origin` mode)",
            format!(
                "{:.3} ({} origin reads; {private_entries} entries stored; cold-start bound {distinct_pairs:.0} distinct (caller, key) pairs)",
                private.origin_per_read(),
                private.origin
            ),
            shared_text.clone(),
            Some(div(private.origin_per_read(), shared.origin_per_read())),
        )
        .headline_as(
            "origin reads per client read, per-caller entries vs shared",
            format!(
                "{:.3} vs {:.3}: {}",
                private.origin_per_read(),
                shared.origin_per_read(),
                ratio(div(private.origin_per_read(), shared.origin_per_read()))
            ),
        ),
        Row::info(
            FIG,
            "hit rate, shared entries behind per-caller grants vs shared (`private`, `grant` mode: a grant per caller and key, checked with a conditional GET)",
            format!(
                "{} hits ({}); {grant_checks} of the hits first checked a grant at the DB API",
                pct(granted.hit_rate()),
                cache_mix(&granted.out)
            ),
            shared_text.clone(),
            Some(div(granted.hit_rate(), shared.hit_rate())),
        ),
        Row::info(
            FIG,
            "origin reads per client read, grant mode vs shared",
            format!(
                "{:.3} ({} origin reads: {} fills, {grant_checks} grant checks answered 304 without a body; {granted_entries} entries and {grants} grants stored)",
                granted.origin_per_read(),
                granted.origin,
                granted.misses()
            ),
            shared_text,
            Some(div(granted.origin_per_read(), shared.origin_per_read())),
        )
        .headline_as(
            "origin reads per client read, grant mode (shared entries, a grant per caller and key) vs shared",
            format!(
                "{:.3} vs {:.3}: {}",
                granted.origin_per_read(),
                shared.origin_per_read(),
                ratio(div(granted.origin_per_read(), shared.origin_per_read()))
            ),
        ),
    ];
    Ok(rows)
}

/// `HIT 61.2 %, MISS 38.8 %`.
fn cache_mix(out: &Outcome) -> String {
    out.cache
        .iter()
        .map(|(tag, n)| format!("{tag} {}", pct(div(*n as f64, out.count() as f64))))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hdrhistogram::Histogram;

    use super::*;

    fn outcome(latencies: &[u64], statuses: &[(u16, u64)], cache: &[(&str, u64)]) -> Outcome {
        let mut hist = Histogram::new_with_bounds(1, 120_000_000, 3).unwrap();
        for l in latencies {
            hist.record(*l).unwrap();
        }
        Outcome {
            hist,
            elapsed: Duration::from_secs(1),
            statuses: statuses.iter().copied().collect(),
            cache: cache
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn rounds_merge_into_one_outcome() {
        let mut a = outcome(&[100, 200], &[(200, 2)], &[("HIT", 2)]);
        let b = outcome(&[300], &[(200, 1)], &[("HIT", 1)]);
        merge(&mut a, b).unwrap();
        assert_eq!(a.count(), 3);
        assert_eq!(a.elapsed, Duration::from_secs(2));
        assert_eq!(a.statuses[&200], 3);
        assert_eq!(a.cache_count("HIT"), 3);
        assert_eq!(answers(&a), "3 answers, all 200 HIT");
    }

    #[test]
    fn answers_that_are_not_200_hits_are_counted() {
        let o = outcome(
            &[100, 200, 300],
            &[(200, 2), (401, 1)],
            &[("HIT", 1), ("MISS", 1)],
        );
        let text = answers(&o);
        assert!(
            text.starts_with("3 answers, at least 2 not 200 HIT"),
            "{text}"
        );
        assert!(text.contains("401"), "{text}");
    }

    #[test]
    fn every_user_has_a_valid_token() {
        for i in 1..=USERS {
            assert!(user_token(i).len() >= 16);
        }
        serde_json::from_str::<serde_json::Value>(ACL).unwrap();
        serde_json::from_str::<serde_json::Value>(RULES).unwrap();
    }
}
