//! The `db-api` binary: parses arguments, opens the store, serves until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::error::ErrorKind;
use clap::{Parser, ValueEnum};
use db_api::announce::AnnounceSettings;
use db_api::auth::{Acl, AuthSettings};
use db_api::faults::{DownMode, FaultConfig, GarbageKind};
use db_api::jwt::JwtSettings;
use db_api::{AppState, Settings};

/// `--auth on|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AuthMode {
    /// Users and per-namespace access rules.
    On,
    /// Only the --token check on /v1/items and /v1/batch, when a token is set.
    Off,
}

/// Reference main-database API for cache-sync.
#[derive(Debug, Parser)]
#[command(name = "db-api", version, about)]
struct Cli {
    /// Address to listen on.
    #[arg(
        long,
        env = "DB_API_LISTEN",
        default_value = "127.0.0.1:3001",
        value_name = "ADDR"
    )]
    listen: SocketAddr,
    /// SQLite file, `:memory:`, or a `postgres://` URL.
    #[arg(
        long,
        env = "DB_API_DB",
        default_value = ".spin/db-api.sqlite",
        value_name = "PATH|URL"
    )]
    db: String,
    /// The service token: the cache's own credential (`db_api_token`).
    ///
    /// With --auth on, the one credential that may send batches; it passes every access
    /// rule. With --auth off, required on /v1/items and /v1/batch when set.
    #[arg(long, env = "DB_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Enforce users and per-namespace access rules (on), or only the --token check (off).
    #[arg(
        long,
        env = "DB_API_AUTH",
        value_enum,
        default_value = "on",
        value_name = "on|off",
        help_heading = "Auth"
    )]
    auth: AuthMode,
    /// A user and its bearer token (repeatable). Without --user and --users, the demo users
    /// alice and bob are seeded with published tokens.
    #[arg(long = "user", value_name = "NAME:TOKEN", value_parser = parse_user, help_heading = "Auth")]
    users: Vec<(String, String)>,
    /// A JSON file of users: {"alice": "<token>", ...} (added to --user).
    #[arg(long = "users", value_name = "FILE", help_heading = "Auth")]
    users_file: Option<PathBuf>,
    /// A JSON file of access rules: {"<ns>": {"read": RULE, "write": RULE}, "*": {...}},
    /// RULE one of anyone, signed-in, owner, nobody; "*" is every other namespace (default
    /// owner/owner). Default: sessions owner/owner, profiles signed-in/owner, public
    /// anyone/signed-in, * owner/owner.
    #[arg(long, value_name = "FILE", help_heading = "Auth")]
    acl: Option<PathBuf>,
    /// Add `max-age=SECS` to the Cache-Control of item reads (default: none, so the cache's
    /// own TTLs apply).
    #[arg(long, value_name = "SECS", help_heading = "Auth")]
    max_age: Option<u64>,
    /// HS256 secret of the test JWT issuer (/_jwt); a public development default otherwise.
    #[arg(
        long,
        env = "DB_API_JWT_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        help_heading = "Auth"
    )]
    jwt_secret: Option<String>,
    /// `iss` of test JWTs, required of JWTs presented as credentials.
    #[arg(long, default_value = db_api::jwt::DEFAULT_ISSUER, value_name = "ISS", help_heading = "Auth")]
    jwt_issuer: String,
    /// `aud` of test JWTs, required of JWTs presented as credentials.
    #[arg(long, default_value = db_api::jwt::DEFAULT_AUDIENCE, value_name = "AUD", help_heading = "Auth")]
    jwt_audience: String,
    /// Larger request bodies are answered 413.
    #[arg(long, default_value_t = db_api::app::DEFAULT_MAX_BODY_BYTES, value_name = "BYTES")]
    max_body_bytes: usize,
    /// Do not serve the test-only routes (/_stats, /_reset, /_seed, /_faults, /_auth, /_jwt,
    /// /_jwks); JWTs are then not accepted as credentials either.
    #[arg(long)]
    no_admin: bool,
    /// Keep received write ids this long (`500ms`, `30s`, `5m`, `2h`, `7d`).
    ///
    /// A write whose id was received before, in any batch, is answered `duplicate` and not
    /// applied again; older write ids are pruned. Must exceed the longest a write can stay
    /// buffered and be retried in the cache: max_dirty_age + flush_max_attempts ×
    /// flush_retry_max (about 2h with the cache's defaults).
    #[arg(
        long,
        env = "DB_API_WRITE_ID_RETENTION",
        default_value = "7d",
        value_name = "DURATION",
        value_parser = parse_retention
    )]
    write_id_retention: Duration,
    /// Announce the items changed through PUT/DELETE /v1/items to the cache at this base URL
    /// (http://host:port; its POST /hooks/invalidate), signed with --announce-secret.
    #[arg(
        long,
        env = "DB_API_ANNOUNCE_TO",
        value_name = "URL",
        requires = "announce_secret"
    )]
    announce_to: Option<String>,
    /// The secret announcements are signed with: the cache's `invalidate_secret`.
    #[arg(
        long,
        env = "DB_API_ANNOUNCE_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        requires = "announce_to"
    )]
    announce_secret: Option<String>,

    /// Start-up faults as JSON (the body of POST /_faults); the flags below override it.
    #[arg(long, value_name = "JSON", help_heading = "Faults", value_parser = parse_faults)]
    faults: Option<FaultConfig>,
    /// Seed of the random faults.
    #[arg(long, value_name = "N", help_heading = "Faults")]
    fault_seed: Option<u64>,
    /// Added latency for every /v1 request.
    #[arg(long, value_name = "MS", help_heading = "Faults")]
    latency_ms: Option<u64>,
    /// Added latency for item reads (replaces --latency-ms for them).
    #[arg(long, value_name = "MS", help_heading = "Faults")]
    read_latency_ms: Option<u64>,
    /// Added latency for batches (replaces --latency-ms for them).
    #[arg(long, value_name = "MS", help_heading = "Faults")]
    batch_latency_ms: Option<u64>,
    /// Up to this much random extra latency.
    #[arg(long, value_name = "MS", help_heading = "Faults")]
    jitter_ms: Option<u64>,
    /// Fraction of /v1 requests answered with an injected 5xx.
    #[arg(long, value_name = "0..1", help_heading = "Faults", value_parser = parse_rate)]
    error_rate: Option<f64>,
    /// Answer the next N /v1 requests with an injected 5xx.
    #[arg(long, value_name = "N", help_heading = "Faults")]
    error_next: Option<u64>,
    /// Status of injected errors.
    #[arg(long, value_name = "5xx", help_heading = "Faults")]
    error_status: Option<u16>,
    /// Fraction of /v1 requests answered 429.
    #[arg(long, value_name = "0..1", help_heading = "Faults", value_parser = parse_rate)]
    throttle_rate: Option<f64>,
    /// Answer the next N /v1 requests 429.
    #[arg(long, value_name = "N", help_heading = "Faults")]
    throttle_next: Option<u64>,
    /// Retry-After of 429 answers.
    #[arg(long, value_name = "SECS", help_heading = "Faults")]
    retry_after: Option<u64>,
    /// Fraction of /v1 requests held for --hold-ms, then answered 504.
    #[arg(long, value_name = "0..1", help_heading = "Faults", value_parser = parse_rate)]
    timeout_rate: Option<f64>,
    /// Hold the next N /v1 requests.
    #[arg(long, value_name = "N", help_heading = "Faults")]
    timeout_next: Option<u64>,
    /// How long a timed-out request is held.
    #[arg(long, value_name = "MS", help_heading = "Faults")]
    hold_ms: Option<u64>,
    /// Fraction of /v1 requests answered 200 with a garbage body (nothing stored).
    #[arg(long, value_name = "0..1", help_heading = "Faults", value_parser = parse_rate)]
    garbage_rate: Option<f64>,
    /// Answer the next N /v1 requests with garbage.
    #[arg(long, value_name = "N", help_heading = "Faults")]
    garbage_next: Option<u64>,
    /// What garbage looks like: truncated, html or empty.
    #[arg(long, value_name = "KIND", help_heading = "Faults", value_parser = parse_garbage_kind)]
    garbage_kind: Option<GarbageKind>,
    /// Fraction of batches applied and then answered with garbage.
    #[arg(long, value_name = "0..1", help_heading = "Faults", value_parser = parse_rate)]
    garbage_after_commit_rate: Option<f64>,
    /// Apply the next N batches, then answer garbage.
    #[arg(long, value_name = "N", help_heading = "Faults")]
    garbage_after_commit_next: Option<u64>,
    /// Start down: `unavailable` (503) or `close` (drop the connection).
    #[arg(long, value_name = "MODE", help_heading = "Faults", value_parser = parse_down)]
    down: Option<DownMode>,
    /// Answer writes to this key `rejected` (repeatable).
    #[arg(long = "reject-key", value_name = "NS/KEY", help_heading = "Faults")]
    reject_keys: Vec<String>,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("{rate} is not between 0 and 1"))
    }
}

/// A duration with its unit, like `500ms`, `30s`, `5m`, `2h` or `7d`; never zero.
fn parse_retention(s: &str) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(s.trim()).ok();
    match parsed {
        Some(d) if !d.is_zero() => Ok(d),
        Some(_) => Err("the retention must be longer than zero".into()),
        None => Err(format!(
            "{s:?} is not a duration (like 500ms, 30s, 5m, 2h or 7d)"
        )),
    }
}

fn parse_user(s: &str) -> Result<(String, String), String> {
    let (name, token) = s
        .split_once(':')
        .ok_or_else(|| "expected NAME:TOKEN".to_owned())?;
    db_api::auth::user_name(name)?;
    db_api::auth::user_token(token)?;
    Ok((name.to_owned(), token.to_owned()))
}

fn parse_faults(s: &str) -> Result<FaultConfig, String> {
    serde_json::from_str(s).map_err(|e| e.to_string())
}

fn parse_down(s: &str) -> Result<DownMode, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("{s:?} is not one of unavailable, close"))
}

fn parse_garbage_kind(s: &str) -> Result<GarbageKind, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("{s:?} is not one of truncated, html, empty"))
}

impl Cli {
    /// The auth settings: flags, and the files they name.
    fn auth_settings(&self) -> anyhow::Result<AuthSettings> {
        let mut users: BTreeMap<String, String> = BTreeMap::new();
        if let Some(path) = &self.users_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            users = serde_json::from_str(&text).with_context(|| {
                format!("{}: expected {{\"name\": \"token\", ...}}", path.display())
            })?;
        }
        for (name, token) in &self.users {
            if users.insert(name.clone(), token.clone()).is_some() {
                anyhow::bail!("user {name} is given twice");
            }
        }
        if users.is_empty() {
            users = AuthSettings::demo_users();
        }
        let acl = match &self.acl {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                Acl::from_json(&text)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| path.display().to_string())?
            }
            None => Acl::demo(),
        };
        let mut jwt = JwtSettings {
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            ..JwtSettings::default()
        };
        if let Some(secret) = &self.jwt_secret {
            jwt.secret = secret.clone();
        }
        Ok(AuthSettings {
            enabled: self.auth == AuthMode::On,
            users,
            acl,
            jwt,
        })
    }

    /// The start-up faults: `--faults` overridden by the individual flags.
    fn fault_config(&self) -> FaultConfig {
        let mut f = self.faults.clone().unwrap_or_default();
        fn set<T: Copy>(slot: &mut T, v: Option<T>) {
            if let Some(v) = v {
                *slot = v;
            }
        }
        set(&mut f.seed, self.fault_seed);
        set(&mut f.latency_ms, self.latency_ms);
        if self.read_latency_ms.is_some() {
            f.read_latency_ms = self.read_latency_ms;
        }
        if self.batch_latency_ms.is_some() {
            f.batch_latency_ms = self.batch_latency_ms;
        }
        set(&mut f.jitter_ms, self.jitter_ms);
        set(&mut f.error.rate, self.error_rate);
        set(&mut f.error.next, self.error_next);
        set(&mut f.error_status, self.error_status);
        set(&mut f.throttle.rate, self.throttle_rate);
        set(&mut f.throttle.next, self.throttle_next);
        set(&mut f.retry_after_secs, self.retry_after);
        set(&mut f.timeout.rate, self.timeout_rate);
        set(&mut f.timeout.next, self.timeout_next);
        set(&mut f.hold_ms, self.hold_ms);
        set(&mut f.garbage.rate, self.garbage_rate);
        set(&mut f.garbage.next, self.garbage_next);
        set(&mut f.garbage_kind, self.garbage_kind);
        set(
            &mut f.garbage_after_commit.rate,
            self.garbage_after_commit_rate,
        );
        set(
            &mut f.garbage_after_commit.next,
            self.garbage_after_commit_next,
        );
        if self.down.is_some() {
            f.down = self.down;
        }
        f.reject_keys.extend(self.reject_keys.iter().cloned());
        f
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        // If the handler cannot be installed, only SIGTERM (or a kill) stops the server.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    let faults = cli.fault_config();
    let backend = db_api::backend::open(&cli.db)
        .await
        .with_context(|| format!("cannot open database {:?}", redact(&cli.db)))?;
    let description = backend.describe();
    let auth = cli.auth_settings()?;
    let token = cli.token.clone().filter(|t| !t.is_empty());
    let notes = auth_notes(&auth, token.is_some(), !cli.no_admin);
    let state = AppState::new(
        backend,
        Settings {
            token,
            faults,
            max_body_bytes: cli.max_body_bytes,
            admin_routes: !cli.no_admin,
            write_id_retention: cli.write_id_retention,
            auth,
            max_age: cli.max_age,
            announce: cli
                .announce_to
                .clone()
                .zip(cli.announce_secret.clone())
                .map(|(cache_url, secret)| AnnounceSettings { cache_url, secret }),
        },
    )?;
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    println!("db-api listening on http://{addr} ({description})");
    for line in notes {
        println!("db-api: {line}");
    }
    db_api::run(listener, state, shutdown_signal())
        .await
        .context("server failed")?;
    println!("db-api stopped");
    Ok(())
}

/// What the start-up output says about auth: the mode, the users (with the demo tokens,
/// which are public anyway), the access rules, a missing service token.
fn auth_notes(auth: &AuthSettings, service_token: bool, test_routes: bool) -> Vec<String> {
    if !auth.enabled {
        return vec![if service_token {
            "auth off: /v1/items and /v1/batch need the service token (--token)".into()
        } else {
            "auth off: no credentials needed".into()
        }];
    }
    let mut notes = Vec::new();
    if auth.has_demo_users() {
        notes.push("auth on; demo users (published tokens, for trying it out only):".into());
        for (name, token) in db_api::auth::DEMO_USERS {
            notes.push(format!("  {name}: Authorization: Bearer {token}"));
        }
    } else {
        let names: Vec<&str> = auth.users.keys().map(String::as_str).collect();
        notes.push(format!("auth on; users: {}", names.join(", ")));
    }
    notes.push(format!("access rules (read/write): {}", auth.acl.summary()));
    if !service_token {
        notes.push("no service token (--token): every batch is refused".into());
    }
    if test_routes {
        notes.push(
            "test routes on (/_auth, /_jwt, ...): anyone can revoke users and mint JWTs; --no-admin turns them off"
                .into(),
        );
    }
    notes
}

/// Hides a password in a database URL for error messages.
fn redact(db: &str) -> String {
    match (db.find("://"), db.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let user = db[s + 3..at].split(':').next().unwrap_or("");
            format!("{}{user}@{}", &db[..s + 3], &db[at + 1..])
        }
        _ => db.to_owned(),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.render().to_string();
            let line = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments");
            eprintln!("db-api: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("db-api: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("db-api: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("db-api").chain(args.iter().copied()))
    }

    #[test]
    fn flags_override_the_faults_json() {
        let cli = parse(&[
            "--faults",
            r#"{"latency_ms": 5, "error": {"rate": 0.1, "routes": "batches"}}"#,
            "--error-rate",
            "0.25",
            "--throttle-next",
            "3",
            "--down",
            "close",
            "--reject-key",
            "users/u1",
            "--reject-key",
            "users/u2",
        ])
        .unwrap();
        let f = cli.fault_config();
        assert_eq!(f.latency_ms, 5);
        assert_eq!(f.error.rate, 0.25);
        assert_eq!(f.error.routes, db_api::faults::Routes::Batches);
        assert_eq!(f.throttle.next, 3);
        assert_eq!(f.down, Some(DownMode::Close));
        assert_eq!(f.reject_keys, ["users/u1", "users/u2"]);
        assert!(f.validate().is_ok());
        assert_eq!(cli.listen.to_string(), "127.0.0.1:3001");
        assert_eq!(cli.db, ".spin/db-api.sqlite");
        assert_eq!(
            cli.write_id_retention,
            db_api::backend::DEFAULT_WRITE_ID_RETENTION
        );
    }

    #[test]
    fn the_write_id_retention_takes_durations_and_days() {
        for (arg, secs) in [
            ("7d", 604_800),
            ("2h", 7_200),
            ("90m", 5_400),
            ("1w", 604_800),
        ] {
            let cli = parse(&["--write-id-retention", arg]).unwrap();
            assert_eq!(cli.write_id_retention, Duration::from_secs(secs), "{arg}");
        }
        let cli = parse(&["--write-id-retention", "250ms"]).unwrap();
        assert_eq!(cli.write_id_retention, Duration::from_millis(250));
    }

    #[test]
    fn bad_flags_are_refused() {
        for args in [
            &["--listen", "nowhere"][..],
            &["--error-rate", "1.5"],
            &["--down", "maybe"],
            &["--garbage-kind", "zip"],
            &["--faults", "{"],
            &["--write-id-retention", "0s"],
            &["--write-id-retention", "d"],
            &["--write-id-retention", "45"],
            &["--write-id-retention", "-1d"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn auth_is_on_by_default_with_the_demo_users_and_acl() {
        let auth = parse(&[]).unwrap().auth_settings().unwrap();
        assert!(auth.enabled);
        assert!(auth.has_demo_users());
        assert_eq!(auth.acl, Acl::demo());
        assert_eq!(auth.jwt, JwtSettings::default());
        let auth = parse(&["--auth", "off"]).unwrap().auth_settings().unwrap();
        assert!(!auth.enabled);
    }

    #[test]
    fn users_and_acls_come_from_flags_and_files() {
        let dir = std::env::temp_dir().join(format!("db-api-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let users = dir.join("users.json");
        std::fs::write(&users, r#"{"carol": "carol-token-0123456789"}"#).unwrap();
        let acl = dir.join("acl.json");
        std::fs::write(&acl, r#"{"docs": {"read": "anyone", "write": "owner"}, "*": {"read": "nobody", "write": "nobody"}}"#).unwrap();
        let cli = parse(&[
            "--user",
            "dave:dave-token-0123456789",
            "--users",
            users.to_str().unwrap(),
            "--acl",
            acl.to_str().unwrap(),
            "--max-age",
            "30",
            "--jwt-audience",
            "edge",
        ])
        .unwrap();
        let auth = cli.auth_settings().unwrap();
        assert_eq!(
            auth.users.keys().map(String::as_str).collect::<Vec<_>>(),
            ["carol", "dave"]
        );
        assert_eq!(auth.acl.rules("docs").read, db_api::auth::Rule::Anyone);
        assert_eq!(auth.acl.rules("sessions").read, db_api::auth::Rule::Nobody);
        assert_eq!(auth.jwt.audience, "edge");
        assert_eq!(cli.max_age, Some(30));
        // A user given twice, a bad file, a missing file.
        let cli = parse(&[
            "--user",
            "carol:carol-token-0123456789",
            "--users",
            users.to_str().unwrap(),
        ])
        .unwrap();
        assert!(cli.auth_settings().is_err());
        std::fs::write(&acl, r#"{"docs": {"read": "all", "write": "owner"}}"#).unwrap();
        assert!(parse(&["--acl", acl.to_str().unwrap()])
            .unwrap()
            .auth_settings()
            .is_err());
        let missing = dir.join("missing.json");
        assert!(parse(&["--users", missing.to_str().unwrap()])
            .unwrap()
            .auth_settings()
            .is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_auth_flags_are_refused() {
        for args in [
            &["--auth", "maybe"][..],
            &["--user", "carol"],
            &["--user", "Carol:carol-token-0123456789"],
            &["--user", "anonymous:carol-token-0123456789"],
            &["--user", "carol:short"],
            &["--max-age", "-1"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn the_start_up_notes_show_demo_tokens_only() {
        let demo = auth_notes(&AuthSettings::on(), true, true).join("\n");
        assert!(demo.contains("Bearer demo-token-for-alice"), "{demo}");
        assert!(demo.contains("sessions owner/owner"), "{demo}");
        let mut own = AuthSettings::on();
        own.users = [("carol".to_owned(), "carol-token-0123456789".to_owned())].into();
        let notes = auth_notes(&own, false, false).join("\n");
        assert!(notes.contains("users: carol"), "{notes}");
        assert!(!notes.contains("carol-token"), "{notes}");
        assert!(notes.contains("every batch is refused"), "{notes}");
    }

    #[test]
    fn redact_hides_passwords() {
        assert_eq!(redact("postgres://u:p@h/db"), "postgres://u@h/db");
        assert_eq!(redact(".spin/x.sqlite"), ".spin/x.sqlite");
    }
}
