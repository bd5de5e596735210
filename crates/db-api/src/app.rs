//! The HTTP surface: routes, request validation and the shared state.
//!
//! Handlers here decide what a request *means* and leave storing to the [`Backend`]. A batch
//! is parsed write by write, so one malformed write is answered `rejected` instead of failing
//! the batch: the flush routine must be able to settle every other write of a batch even if
//! one of them can never be stored. The public routes are `/v1/*` and `/healthz`; the `_`
//! routes exist for tests and benchmarks and can be switched off.
//!
//! With auth off (the library default), `/v1/items` and `/v1/batch` are guarded by the
//! `--token` check alone, as before users existed, and every item is `Cache-Control: public`.
//! With auth on, each handler asks the [`Authenticator`]: item reads follow the namespace's
//! read rule, batches come from the service token only and each write made `on_behalf_of` a
//! principal is checked against the write rule when it arrives, and `/v1/authorize` answers
//! the same question for the cache ahead of time (see [`crate::auth`]).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cache_sync_contract::wire::{
    version_at, Access, AuthorizeRequest, AuthorizeResponse, BatchResponse, BatchWrite, ItemStatus,
    WriteOp, AUTHORIZE_PATH, BATCH_PATH, FORBIDDEN_REASON, IDEMPOTENCY_KEY_HEADER,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::announce::{AnnounceSettings, Announcer};
use crate::auth::{AuthSettings, Authenticator, Caller};
use crate::backend::{
    Backend, ItemPrecondition, PlannedBatch, PlannedWrite, SeedItem, ValidWrite, WriteIdPolicy,
    DEFAULT_WRITE_ID_RETENTION,
};
use crate::deliveries::DeliveryJournal;
use crate::error::{ApiError, BackendError};
use crate::faults::{self, FaultConfig, FaultConfigError, Faults};
use crate::jwt::IssueRequest;
use crate::seed::{self, SeedRequest};
use crate::stats::{add, bump, Counters, StatsBody};
use crate::validate;

/// Default limit on request bodies.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Settings of an [`AppState`] besides the backend.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The service token: the cache's own credential. With auth off, `/v1/items` and
    /// `/v1/batch` require `Authorization: Bearer <token>` when it is set; with auth on it
    /// is the one credential that may send batches, and it passes every access rule.
    pub token: Option<String>,
    /// Faults active from the start.
    pub faults: FaultConfig,
    /// Larger bodies are answered `413`.
    pub max_body_bytes: usize,
    /// Serve the test-only `_` routes (`/_stats`, `/_reset`, `/_seed`, `/_faults`).
    pub admin_routes: bool,
    /// How long received write ids are kept (answered `duplicate` if received again). Must
    /// exceed the longest a write can stay buffered and retried in the cache.
    pub write_id_retention: Duration,
    /// Users, access rules and the test JWT issuer; off by default (see [`AuthSettings`]).
    pub auth: AuthSettings,
    /// `max-age` added to the `Cache-Control` of item reads; none by default, so that the
    /// cache's own TTLs apply.
    pub max_age: Option<u64>,
    /// Where to announce the items the item routes change; none by default.
    pub announce: Option<AnnounceSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token: None,
            faults: FaultConfig::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            admin_routes: true,
            write_id_retention: DEFAULT_WRITE_ID_RETENTION,
            auth: AuthSettings::default(),
            max_age: None,
            announce: None,
        }
    }
}

/// Settings an [`AppState`] refuses.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The start-up faults make no sense.
    #[error("invalid faults: {0}")]
    Faults(#[from] FaultConfigError),
    /// Users, ACL or JWT settings make no sense.
    #[error("invalid auth settings: {0}")]
    Auth(String),
    /// The announce URL or secret makes no sense.
    #[error("invalid announce settings: {0}")]
    Announce(String),
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub backend: Arc<dyn Backend>,
    /// The live fault configuration.
    pub faults: Arc<Faults>,
    /// Request counters.
    pub counters: Arc<Counters>,
    /// Every write delivered in a first-sent batch and every write id applied, to count
    /// redeliveries and double applications.
    pub deliveries: Arc<DeliveryJournal>,
    /// Credentials, revocations and access rules.
    pub auth: Arc<Authenticator>,
    announcer: Option<Announcer>,
    settings: Arc<Settings>,
    shutdown: Arc<watch::Sender<bool>>,
}

impl AppState {
    /// State over `backend` with `settings`. Invalid start-up faults, users, ACLs or JWT
    /// settings are refused.
    pub fn new(backend: Arc<dyn Backend>, settings: Settings) -> Result<Self, SettingsError> {
        settings.faults.validate()?;
        let auth = Authenticator::new(
            &settings.auth,
            settings.token.as_deref(),
            settings.admin_routes,
        )
        .map_err(SettingsError::Auth)?;
        let announcer = settings
            .announce
            .clone()
            .map(Announcer::new)
            .transpose()
            .map_err(SettingsError::Announce)?;
        Ok(Self {
            backend,
            faults: Arc::new(Faults::new(settings.faults.clone())),
            counters: Arc::new(Counters::default()),
            deliveries: Arc::new(DeliveryJournal::default()),
            auth: Arc::new(auth),
            announcer,
            settings: Arc::new(settings),
            shutdown: Arc::new(watch::channel(false).0),
        })
    }

    /// Tells requests held by an injected timeout to give up (called on shutdown).
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Waits `duration`, or less if the server is shutting down.
    pub(crate) async fn hold(&self, duration: Duration) {
        let mut rx = self.shutdown.subscribe();
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            _ = rx.wait_for(|stopping| *stopping) => {}
        }
    }

    /// The caller of `headers` (auth on), counting a refusal.
    fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        self.auth.authenticate(headers).map_err(|e| self.refused(e))
    }

    /// The caller of `headers` if it may make `op` on `ns/key` (auth on), counting a refusal.
    fn access(
        &self,
        headers: &HeaderMap,
        ns: &str,
        key: &str,
        op: Access,
    ) -> Result<Caller, ApiError> {
        let caller = self.caller(headers)?;
        self.auth
            .check(&caller, ns, key, op)
            .map_err(|d| self.refused(d.into()))?;
        Ok(caller)
    }

    /// Announces a change of `ns/key` to the cache, when configured; counts the outcome.
    async fn announce(&self, ns: &str, key: &str) {
        let Some(announcer) = &self.announcer else {
            return;
        };
        match announcer.changed(ns, key).await {
            Ok(()) => bump(&self.counters.announcements_sent),
            Err(e) => {
                bump(&self.counters.announcements_failed);
                eprintln!("db-api: could not announce {ns}/{key} to the cache: {e}");
            }
        }
    }

    /// Counts a `401` or `403` on its way out.
    fn refused(&self, e: ApiError) -> ApiError {
        match e.status() {
            StatusCode::UNAUTHORIZED => bump(&self.counters.unauthorized),
            StatusCode::FORBIDDEN => bump(&self.counters.forbidden),
            _ => {}
        }
        e
    }

    /// The `Cache-Control` of an item read in `ns` (RFC 9111): `public` when anyone may read
    /// the namespace (always, with auth off), `private` otherwise; `max-age` when configured.
    fn cache_control(&self, ns: &str) -> HeaderValue {
        let scope = if self.auth.is_public(ns) {
            "public"
        } else {
            "private"
        };
        let text = match self.settings.max_age {
            Some(secs) => format!("{scope}, max-age={secs}"),
            None => scope.to_owned(),
        };
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("private"))
    }
}

/// The router of the DB API.
pub fn app(state: AppState) -> Router {
    let v1 = Router::new()
        .route(
            "/v1/items/{ns}/{key}",
            get(get_item).put(put_item).delete(delete_item),
        )
        .route(BATCH_PATH, post(post_batch))
        .route(AUTHORIZE_PATH, post(authorize))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            faults::inject,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    let mut router = v1.route("/healthz", get(healthz));
    if state.settings.admin_routes {
        router = router
            .route("/_stats", get(get_stats))
            .route("/_reset", post(reset))
            .route("/_seed", post(post_seed))
            .route("/_faults", get(get_faults).post(set_faults))
            .route("/_auth", get(get_auth))
            .route("/_auth/revoke", post(revoke))
            .route("/_auth/restore", post(restore))
            .route("/_jwt", post(issue_jwt))
            .route("/_jwks", get(get_jwks));
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(
            state.settings.max_body_bytes,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// With auth off, requires the bearer token on `/v1/items` and `/v1/batch`, when one is
/// configured (compared in constant time); `/v1/authorize` answers any caller. With auth on,
/// the handlers check their callers themselves.
async fn auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.auth.enabled() || request.uri().path() == AUTHORIZE_PATH {
        return next.run(request).await;
    }
    if let Some(token) = &state.settings.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let ok = presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes()));
        if !ok {
            bump(&state.counters.unauthorized);
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn etag(version: u64) -> String {
    cache_sync_contract::wire::etag_of_version(version)
}

/// An item write's `If-Match` and `If-None-Match`, if it sent either; a value that is not
/// text is `400`.
fn item_precondition(headers: &HeaderMap) -> Result<Option<ItemPrecondition>, ApiError> {
    let text = |name: header::HeaderName| {
        headers
            .get(&name)
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| ApiError::BadRequest(format!("{name} is not text")))
            })
            .transpose()
    };
    let precondition = ItemPrecondition {
        if_match: text(header::IF_MATCH)?,
        if_none_match: text(header::IF_NONE_MATCH)?,
    };
    Ok((precondition != ItemPrecondition::default()).then_some(precondition))
}

async fn get_item(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((ns, key)) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    validate::namespace(&ns).map_err(ApiError::BadRequest)?;
    validate::item_key(&key).map_err(ApiError::BadRequest)?;
    if state.auth.enabled() {
        state.access(&headers, &ns, &key, Access::Read)?;
    }
    let cache_control = state.cache_control(&ns);
    let item = state.backend.get_item(&ns, &key).await?;
    bump(&state.counters.item_reads);
    let Some((value, item)) = item.and_then(|i| i.value.clone().map(|v| (v, i))) else {
        bump(&state.counters.item_misses);
        let mut response = ApiError::NotFound(format!("no item {ns}/{key}")).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, cache_control);
        return Ok(response);
    };
    bump(&state.counters.item_hits);
    let tag = etag(item.version);
    let tag_value = HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"v0\""));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = Response::new(Body::from(value));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    response.headers_mut().insert(header::ETAG, tag_value);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, cache_control);
    Ok(response)
}

/// `PUT /v1/items/{ns}/{key}`: stores the JSON body as the item's value, now.
async fn put_item(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path((ns, key)) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if !is_json(&headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = body.map_err(|e| body_error(&state, e))?;
    let value: Value = parse_json(&body)?;
    write_item(&state, &headers, ns, key, Some(value)).await
}

/// `DELETE /v1/items/{ns}/{key}`: removes the item, now.
async fn delete_item(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path((ns, key)) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    write_item(&state, &headers, ns, key, None).await
}

/// One item write of the API's own, as another writer of the database makes it: checked
/// against the caller's write rule (auth on), applied as a one-write batch at a version
/// ordered by time with the cache's writes ([`version_at`]), then announced to the cache ([`crate::announce`]). With an `Idempotency-Key`, a
/// repeat answers the first result and applies nothing again; the same key with another body
/// is `422`. A write that loses a race with another write of the item is `409`. `If-Match`
/// and `If-None-Match` are judged with the write, in its transaction
/// ([`crate::backend::ValidWrite::only_if`]): `412` when they do not hold.
async fn write_item(
    state: &AppState,
    headers: &HeaderMap,
    ns: String,
    key: String,
    value: Option<Value>,
) -> Result<Response, ApiError> {
    validate::namespace(&ns).map_err(ApiError::BadRequest)?;
    validate::item_key(&key).map_err(ApiError::BadRequest)?;
    if state.auth.enabled() {
        state.access(headers, &ns, &key, Access::Write)?;
    }
    let only_if = item_precondition(headers)?;
    let op = if value.is_some() {
        WriteOp::Put
    } else {
        WriteOp::Delete
    };
    let value = value.map(|v| v.to_string());
    let content = fingerprint(
        json!([op == WriteOp::Put, &ns, &key, &value])
            .to_string()
            .as_bytes(),
    );
    let batch_id = match headers.get(IDEMPOTENCY_KEY_HEADER) {
        Some(k) => {
            let k = k.to_str().map_err(|_| {
                ApiError::BadRequest(format!("{IDEMPOTENCY_KEY_HEADER} is not text"))
            })?;
            let id = format!(
                "item:{}",
                fingerprint(json!([&ns, &key, k]).to_string().as_bytes())
            );
            validate::batch_id(&id).map_err(ApiError::BadRequest)?;
            id
        }
        None => format!("item:{}", random_hex()),
    };
    let current = state.backend.get_item(&ns, &key).await?.map(|c| c.version);
    let now = u64::try_from(crate::backend::now_ms()).unwrap_or(0);
    // Ordered by time with the cache's writes (`version_at`), and above the version replaced.
    let version = current
        .map_or(1, |v| v.saturating_add(1))
        .max(version_at(now))
        .min(i64::MAX as u64);
    let batch = PlannedBatch {
        batch_id,
        fingerprint: content,
        writes: vec![PlannedWrite::Write(ValidWrite {
            ns: ns.clone(),
            key: key.clone(),
            write_id: random_hex(),
            op,
            value,
            version,
            written_at: now,
            only_if,
        })],
        write_ids: WriteIdPolicy {
            retention: state.settings.write_id_retention,
            guarded: true,
        },
    };
    let outcome = state.backend.apply_batch(batch).await?;
    let result = outcome
        .response
        .results
        .first()
        .ok_or_else(|| ApiError::Backend(BackendError::Corrupt("empty answer".into())))?;
    let version = match result.status {
        // A repeat: the first write made the version the item holds now.
        ItemStatus::Applied | ItemStatus::Duplicate if outcome.replayed => current.unwrap_or(0),
        ItemStatus::Applied | ItemStatus::Duplicate => version,
        ItemStatus::Stale | ItemStatus::Conflict => {
            return Err(ApiError::Conflict(format!(
                "{ns}/{key} was written concurrently; read it and try again"
            )))
        }
        ItemStatus::Rejected => {
            return Err(ApiError::BadRequest(
                result.reason.clone().unwrap_or_else(|| "rejected".into()),
            ))
        }
    };
    if !outcome.replayed {
        bump(&state.counters.item_writes);
        state.announce(&ns, &key).await;
    }
    let mut response = Json(json!({ "ns": ns, "key": key, "version": version })).into_response();
    if let Ok(tag) = HeaderValue::from_str(&etag(version)) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    if outcome.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// 32 random lowercase hex digits (a write id's form).
fn random_hex() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

fn body_error(state: &AppState, e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(state.settings.max_body_bytes)
    } else {
        ApiError::BadRequest(e.body_text())
    }
}

/// Parses a JSON body, mapping failures to `400 bad_json`.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadJson(format!("invalid JSON body: {e}")))
}

/// FNV-1a, 64 bits: a stable digest to recognise a batch id resent with another body.
fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// What identifies a batch's content for the idempotency check: each write without its
/// `value` and `written_at`. A key's value is fixed by its version, and leaving the value out
/// keeps the check immune to how a client re-serializes JSON on a resend.
fn identity(writes: &[Value]) -> String {
    let stripped: Vec<Value> = writes
        .iter()
        .map(|w| match w {
            Value::Object(map) => {
                // Sorted explicitly: field order must not matter whatever the map type.
                let mut fields: Vec<(&String, &Value)> = map
                    .iter()
                    .filter(|(k, _)| k.as_str() != "value" && k.as_str() != "written_at")
                    .collect();
                fields.sort_by(|a, b| a.0.cmp(b.0));
                json!(fields)
            }
            other => other.clone(),
        })
        .collect();
    Value::Array(stripped).to_string()
}

/// Turns one raw write into a write to store or a rejection with its reason. With auth on, a
/// write made `on_behalf_of` a principal that may not make it now is [`PlannedWrite::Forbidden`];
/// one without `on_behalf_of` is the service's own.
fn plan_write(state: &AppState, raw: Value) -> PlannedWrite {
    let w: BatchWrite = match serde_json::from_value(raw) {
        Ok(w) => w,
        Err(e) => return PlannedWrite::Rejected(format!("invalid write: {e}")),
    };
    if let Err(reason) = validate::namespace(&w.ns)
        .and_then(|()| validate::item_key(&w.key))
        .and_then(|()| validate::write_id(&w.write_id))
    {
        return PlannedWrite::Rejected(reason);
    }
    if i64::try_from(w.version).is_err() || i64::try_from(w.written_at).is_err() {
        return PlannedWrite::Rejected("version and written_at must fit in 63 bits".into());
    }
    let value = match (w.op, &w.value) {
        (WriteOp::Put, None) => return PlannedWrite::Rejected("put without a value".into()),
        (WriteOp::Put, Some(v)) => Some(v.to_string()),
        (WriteOp::Delete, _) => None,
    };
    if state.auth.enabled() {
        if let Some(principal) = &w.on_behalf_of {
            if !state
                .auth
                .principal_may(principal, &w.ns, &w.key, Access::Write)
            {
                return PlannedWrite::Forbidden {
                    ns: w.ns,
                    key: w.key,
                    write_id: w.write_id,
                };
            }
        }
    }
    if state.faults.is_rejected(&w.ns, &w.key) {
        return PlannedWrite::Rejected("key is configured to be rejected".into());
    }
    PlannedWrite::Write(ValidWrite {
        ns: w.ns,
        key: w.key,
        write_id: w.write_id,
        op: w.op,
        value,
        version: w.version,
        written_at: w.written_at,
        only_if: None,
    })
}

async fn post_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if state.auth.enabled() {
        match state.caller(&headers)? {
            Caller::Service => {}
            Caller::Anonymous => {
                return Err(state.refused(ApiError::SignInRequired(
                    "batches need the service token".into(),
                )))
            }
            Caller::User(name) => {
                return Err(state.refused(ApiError::Forbidden(format!(
                    "{name} may not send batches: only the service token may"
                ))))
            }
        }
    }
    if !is_json(&headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = body.map_err(|e| body_error(&state, e))?;
    let mut request: serde_json::Map<String, Value> = parse_json(&body)?;
    let batch_id = match request.remove("batch_id") {
        Some(Value::String(id)) => id,
        _ => return Err(ApiError::BadJson("batch_id must be a string".into())),
    };
    let writes = match request.remove("writes") {
        Some(Value::Array(writes)) => writes,
        _ => return Err(ApiError::BadJson("writes must be an array".into())),
    };
    validate::batch_id(&batch_id).map_err(ApiError::BadRequest)?;
    let header_id = headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .ok_or_else(|| ApiError::BadRequest(format!("missing {IDEMPOTENCY_KEY_HEADER} header")))?
        .to_str()
        .map_err(|_| ApiError::BadRequest(format!("{IDEMPOTENCY_KEY_HEADER} is not text")))?;
    if header_id.trim_matches('"') != batch_id {
        return Err(ApiError::BadRequest(format!(
            "{IDEMPOTENCY_KEY_HEADER} {header_id:?} does not match batch_id {batch_id:?}"
        )));
    }
    let digest = fingerprint(identity(&writes).as_bytes());
    let planned = writes.into_iter().map(|w| plan_write(&state, w)).collect();
    let batch = PlannedBatch {
        batch_id,
        fingerprint: digest,
        writes: planned,
        write_ids: WriteIdPolicy {
            retention: state.settings.write_id_retention,
            guarded: !state.faults.skip_write_guards(),
        },
    };
    let writes = batch.writes.clone();
    let outcome = state.backend.apply_batch(batch).await?;
    let c = &state.counters;
    bump(&c.batch_requests);
    if outcome.replayed {
        bump(&c.duplicate_batches);
    } else {
        count_results(c, &outcome.response);
        add(&c.writes_redelivered, state.deliveries.record(&writes));
        add(
            &c.writes_applied_twice,
            state
                .deliveries
                .record_applied(&writes, &outcome.response.results),
        );
    }
    let mut response = Json(outcome.response).into_response();
    if outcome.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

fn count_results(c: &Counters, response: &BatchResponse) {
    for r in &response.results {
        let counter = match r.status {
            ItemStatus::Applied => &c.writes_applied,
            ItemStatus::Stale => &c.writes_stale,
            ItemStatus::Duplicate => &c.writes_duplicate,
            ItemStatus::Conflict => &c.writes_conflict,
            ItemStatus::Rejected => &c.writes_rejected,
        };
        add(counter, 1);
        if r.status == ItemStatus::Rejected && r.reason.as_deref() == Some(FORBIDDEN_REASON) {
            add(&c.writes_forbidden, 1);
        }
    }
}

/// `POST /v1/authorize`: may the caller (its own `Authorization`) make this access?
async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AuthorizeResponse>, ApiError> {
    bump(&state.counters.authorize_calls);
    let answer = decide_authorize(&state, &headers, body).await;
    if matches!(&answer, Err(e) if matches!(e.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN))
    {
        bump(&state.counters.authorize_denied);
    }
    answer.map(Json)
}

async fn decide_authorize(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<AuthorizeResponse, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = body.map_err(|e| body_error(state, e))?;
    let request: AuthorizeRequest = match parse_json(&body)? {
        object @ Value::Object(_) => serde_json::from_value(object)
            .map_err(|e| ApiError::BadJson(format!("invalid authorization request: {e}")))?,
        _ => return Err(ApiError::BadJson("expected a JSON object".into())),
    };
    validate::namespace(&request.ns).map_err(ApiError::BadRequest)?;
    validate::item_key(&request.key).map_err(ApiError::BadRequest)?;
    let caller = if state.auth.enabled() {
        state.access(headers, &request.ns, &request.key, request.op)?
    } else {
        // Everyone may do everything; name the caller if its token names someone.
        state
            .auth
            .authenticate(headers)
            .unwrap_or(Caller::Anonymous)
    };
    Ok(AuthorizeResponse {
        principal: caller.principal().to_owned(),
    })
}

async fn healthz(State(state): State<AppState>) -> Response {
    if let Some(mode) = state.faults.down() {
        return faults::down_response(mode);
    }
    Json(json!({"status": "ok", "backend": state.backend.kind()})).into_response()
}

async fn get_stats(State(state): State<AppState>) -> Result<Json<StatsBody>, ApiError> {
    let rows = state.backend.stats().await?;
    Ok(Json(StatsBody {
        backend: state.backend.kind().to_owned(),
        counters: state.counters.snapshot(),
        rows: rows.rows,
        tombstones: rows.tombstones,
        stored_batches: rows.stored_batches,
        stored_write_ids: rows.stored_write_ids,
        deliveries_tracked: state.deliveries.len(),
        applied_write_ids_tracked: state.deliveries.applied_len(),
    }))
}

#[derive(Debug, Deserialize)]
struct ResetParams {
    #[serde(default)]
    faults: bool,
}

async fn reset(
    State(state): State<AppState>,
    params: Result<Query<ResetParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    state.backend.reset().await?;
    state.counters.reset();
    state.deliveries.clear();
    state.auth.clear_revocations();
    let faults_cleared = params.faults;
    if faults_cleared {
        // The default config always validates.
        let _ = state.faults.set(FaultConfig::default());
    }
    Ok(Json(
        json!({"status": "reset", "faults_cleared": faults_cleared}),
    ))
}

async fn post_seed(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|e| body_error(&state, e))?;
    let request: SeedRequest = parse_json(&body)?;
    let items: Vec<SeedItem> = seed::expand(request).map_err(ApiError::BadRequest)?;
    let inserted = state.backend.seed(items).await?;
    let rows = state.backend.stats().await?.rows;
    Ok(Json(json!({"inserted": inserted, "rows": rows})))
}

async fn get_faults(State(state): State<AppState>) -> Json<FaultConfig> {
    Json(state.faults.get())
}

async fn set_faults(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<FaultConfig>, ApiError> {
    let body = body.map_err(|e| body_error(&state, e))?;
    let config: FaultConfig = if body.iter().all(u8::is_ascii_whitespace) {
        FaultConfig::default()
    } else {
        parse_json(&body)?
    };
    state
        .faults
        .set(config)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(Json(state.faults.get()))
}

/// `GET /_auth`: whether auth is on, the users (with their revocation), the ACL.
async fn get_auth(State(state): State<AppState>) -> Json<Value> {
    let auth = &state.auth;
    let users: Vec<Value> = auth
        .user_names()
        .into_iter()
        .map(|name| json!({"name": name, "revoked": auth.is_revoked(&name)}))
        .collect();
    Json(json!({
        "auth": if auth.enabled() { "on" } else { "off" },
        "service_token": state.settings.token.is_some(),
        "users": users,
        "acl": auth.acl().to_json(),
        "jwt": {"issuer": state.settings.auth.jwt.issuer, "audience": state.settings.auth.jwt.audience},
    }))
}

/// The body of `POST /_auth/revoke` and `POST /_auth/restore`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRequest {
    user: String,
}

async fn set_revoked(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
    revoked: bool,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|e| body_error(state, e))?;
    let request: UserRequest = parse_json(&body)?;
    state
        .auth
        .set_revoked(&request.user, revoked)
        .map_err(ApiError::NotFound)?;
    Ok(Json(json!({"user": request.user, "revoked": revoked})))
}

/// `POST /_auth/revoke`: the user's token (and JWTs) stop working, and writes made on its
/// behalf are refused, until `/_auth/restore` or `/_reset`.
async fn revoke(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    set_revoked(&state, body, true).await
}

/// `POST /_auth/restore`: undoes `/_auth/revoke`.
async fn restore(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    set_revoked(&state, body, false).await
}

/// `POST /_jwt`: a signed token (test issuer).
async fn issue_jwt(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| body_error(&state, e))?;
    let request: IssueRequest = parse_json(&body)?;
    let jwt = state
        .auth
        .jwt()
        .ok_or_else(|| ApiError::NotFound("no JWT issuer".into()))?;
    let issued = jwt.issue(request).await.map_err(ApiError::BadRequest)?;
    Ok(Json(issued).into_response())
}

/// `GET /_jwks`: the test issuer's keys (RFC 7517), the HS256 secret included.
async fn get_jwks(State(state): State<AppState>) -> Result<Response, ApiError> {
    let jwt = state
        .auth
        .jwt()
        .ok_or_else(|| ApiError::NotFound("no JWT issuer".into()))?;
    let set = jwt
        .jwks()
        .await
        .map_err(|e| ApiError::Backend(crate::error::BackendError::Task(e)))?;
    let mut response = Json(set).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
