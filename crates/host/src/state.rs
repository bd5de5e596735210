//! Per-instance host state and the Spin interfaces implemented on it.
//!
//! Like Spin, every request (and every cron tick) gets a fresh `Store` holding one
//! [`HostState`]: WASI, wasi:http, a resource table, and a handle to the component's
//! static context (its key-value grants, variables and outbound policy), which is built
//! once at load.

use std::future::Future;
use std::sync::Arc;

use http_body_util::BodyExt;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

use crate::bindings::{key_value as kv, variables as var, wasi_atomics, wasi_batch, wasi_store};
use crate::kv::{KvCas, KvError, KvFailure, SharedKvStores, StoreBackend};
use crate::logs::Logger;
use crate::outbound::OutboundPolicy;
use crate::variables::{Resolver, VariableError};

/// What a component may do, fixed at load time.
pub struct ComponentContext {
    /// The component id.
    pub id: String,
    /// Labels from `key_value_stores`.
    pub kv_grants: Vec<String>,
    /// Every store defined for the application.
    pub stores: SharedKvStores,
    /// Variable resolution.
    pub resolver: Arc<Resolver>,
    /// `allowed_outbound_hosts`.
    pub outbound: OutboundPolicy,
    /// `[component.X] environment`.
    pub environment: Vec<(String, String)>,
    /// Where the component's stdout/stderr and host messages go.
    pub logger: Logger,
}

/// The resource behind `fermyon:spin/key-value.store`.
pub struct KvHandle {
    store: StoreBackend,
}

/// The resource behind `wasi:keyvalue/store.bucket`.
pub struct WasiBucket {
    store: StoreBackend,
}

/// Outbound HTTP gate: checks the component's policy, then sends with wasmtime's client.
pub struct OutboundHooks {
    context: Arc<ComponentContext>,
    /// Whether this instance already logged that its allowed hosts do not parse.
    reported_broken: bool,
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                    ),
                    HttpError,
                >,
            > + Send,
    > {
        if let Some(reason) = self.context.outbound.broken_reason() {
            // Spin resolves templated entries at first use, once per instance, and logs
            // why they fail; the request is refused.
            if !self.reported_broken {
                self.reported_broken = true;
                self.context
                    .logger
                    .host(&format!("Error parsing allowed outbound hosts: {reason}"));
            }
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        if !self.context.outbound.allows(request.uri()) {
            let uri = request.uri();
            let origin = format!(
                "{}://{}",
                uri.scheme_str().unwrap_or("?"),
                uri.authority().map(|a| a.as_str()).unwrap_or("?")
            );
            self.context.logger.host(&format!(
                "Warning: A component tried to make an outbound network connection to disallowed destination '{origin}'.\nTo allow this request, add 'allowed_outbound_hosts = [\"{origin}\"]' to the manifest component section."
            ));
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

/// The data of one wasmtime `Store`.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutboundHooks,
    context: Arc<ComponentContext>,
}

impl HostState {
    /// Fresh state for one instance of the component described by `context`.
    pub fn new(context: Arc<ComponentContext>) -> HostState {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(context.logger.stdout_for(&context.id))
            .stderr(context.logger.stderr_for(&context.id));
        for (k, v) in &context.environment {
            wasi.env(k, v);
        }
        HostState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundHooks {
                context: context.clone(),
                reported_broken: false,
            },
            context,
        }
    }

    /// The component this state belongs to.
    pub fn context(&self) -> &Arc<ComponentContext> {
        &self.context
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

fn kv_err(e: KvError) -> kv::Error {
    kv::Error::Other(e.0)
}

/// A store call's result as the guest sees it: a backend failure is the interface's error
/// (`map`), a trap (where Spin's backend panics) ends the instance.
fn answer<T, E>(
    result: Result<T, KvFailure>,
    map: fn(KvError) -> E,
) -> wasmtime::Result<Result<T, E>> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(KvFailure::Error(e)) => Ok(Err(map(e))),
        Err(KvFailure::Trap(message)) => Err(wasmtime::Error::msg(message)),
    }
}

impl kv::Host for HostState {}

impl kv::HostStore for HostState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<KvHandle>, kv::Error>> {
        if !self.context.kv_grants.contains(&label) {
            return Ok(Err(kv::Error::AccessDenied));
        }
        let Some(store) = self.context.stores.get(&label).cloned() else {
            return Ok(Err(kv::Error::NoSuchStore));
        };
        Ok(Ok(self.table.push(KvHandle { store })?))
    }

    async fn get(
        &mut self,
        handle: Resource<KvHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, kv::Error>> {
        let store = self.table.get(&handle)?.store.clone();
        answer(store.get(&key).await, kv_err)
    }

    async fn set(
        &mut self,
        handle: Resource<KvHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        let store = self.table.get(&handle)?.store.clone();
        answer(store.set(&key, &value).await, kv_err)
    }

    async fn delete(
        &mut self,
        handle: Resource<KvHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        let store = self.table.get(&handle)?.store.clone();
        answer(store.delete(&key).await, kv_err)
    }

    async fn exists(
        &mut self,
        handle: Resource<KvHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, kv::Error>> {
        let store = self.table.get(&handle)?.store.clone();
        answer(store.exists(&key).await, kv_err)
    }

    async fn get_keys(
        &mut self,
        handle: Resource<KvHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, kv::Error>> {
        let store = self.table.get(&handle)?.store.clone();
        answer(store.get_keys().await, kv_err)
    }

    async fn drop(&mut self, handle: Resource<KvHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

fn wasi_err(e: KvError) -> wasi_store::Error {
    wasi_store::Error::Other(e.0)
}

impl wasi_store::Host for HostState {
    /// As Spin: a label outside `key_value_stores` is `access-denied`.
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<WasiBucket>, wasi_store::Error>> {
        if !self.context.kv_grants.contains(&identifier) {
            return Ok(Err(wasi_store::Error::AccessDenied));
        }
        let Some(store) = self.context.stores.get(&identifier).cloned() else {
            return Ok(Err(wasi_store::Error::NoSuchStore));
        };
        Ok(Ok(self.table.push(WasiBucket { store })?))
    }
}

impl wasi_store::HostBucket for HostState {
    async fn get(
        &mut self,
        bucket: Resource<WasiBucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_store::Error>> {
        let store = self.table.get(&bucket)?.store.clone();
        answer(store.get(&key).await, wasi_err)
    }

    async fn set(
        &mut self,
        bucket: Resource<WasiBucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wasi_store::Error>> {
        let store = self.table.get(&bucket)?.store.clone();
        answer(store.set(&key, &value).await, wasi_err)
    }

    async fn delete(
        &mut self,
        bucket: Resource<WasiBucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), wasi_store::Error>> {
        let store = self.table.get(&bucket)?.store.clone();
        answer(store.delete(&key).await, wasi_err)
    }

    async fn exists(
        &mut self,
        bucket: Resource<WasiBucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wasi_store::Error>> {
        let store = self.table.get(&bucket)?.store.clone();
        answer(store.exists(&key).await, wasi_err)
    }

    /// As Spin: every key at once; a cursor is refused.
    async fn list_keys(
        &mut self,
        bucket: Resource<WasiBucket>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<wasi_store::KeyResponse, wasi_store::Error>> {
        if cursor.is_some() {
            return Ok(Err(wasi_store::Error::Other(
                "list_keys: cursor not supported".to_owned(),
            )));
        }
        let store = self.table.get(&bucket)?.store.clone();
        answer(
            store
                .get_keys()
                .await
                .map(|keys| wasi_store::KeyResponse { keys, cursor: None }),
            wasi_err,
        )
    }

    async fn drop(&mut self, bucket: Resource<WasiBucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

/// As Spin (3.1 and later): the bucket is the one `open` granted (no further access check),
/// an empty list is answered without asking the backend, and the rest is the backend's own
/// answer (`crate::kv` gives each backend's semantics).
impl wasi_batch::Host for HostState {
    async fn get_many(
        &mut self,
        bucket: Resource<WasiBucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, wasi_store::Error>> {
        let store = self.table.get(&bucket)?.store.clone();
        if keys.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        answer(store.get_many(keys).await, wasi_err)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<WasiBucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wasi_store::Error>> {
        let store = self.table.get(&bucket)?.store.clone();
        if key_values.is_empty() {
            return Ok(Ok(()));
        }
        answer(store.set_many(key_values).await, wasi_err)
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<WasiBucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wasi_store::Error>> {
        let store = self.table.get(&bucket)?.store.clone();
        if keys.is_empty() {
            return Ok(Ok(()));
        }
        answer(store.delete_many(keys).await, wasi_err)
    }
}

impl wasi_atomics::HostCas for HostState {
    async fn new(
        &mut self,
        bucket: Resource<WasiBucket>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<KvCas>, wasi_store::Error>> {
        let store = self.table.get(&bucket)?.store.clone();
        match answer(store.new_cas(&key).await, wasi_err)? {
            Ok(cas) => Ok(Ok(self.table.push(cas)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn current(
        &mut self,
        cas: Resource<KvCas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_store::Error>> {
        let cas = self.table.get_mut(&cas)?;
        answer(cas.current().await, wasi_err)
    }

    async fn drop(&mut self, cas: Resource<KvCas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl wasi_atomics::Host for HostState {
    async fn increment(
        &mut self,
        bucket: Resource<WasiBucket>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, wasi_store::Error>> {
        let store = self.table.get(&bucket)?.store.clone();
        answer(store.increment(&key, delta).await, wasi_err)
    }

    /// As Spin: a failed swap hands back a fresh `cas` on the same key whose `current`
    /// has already been read, so a retry compares with the latest value.
    async fn swap(
        &mut self,
        cas: Resource<KvCas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wasi_atomics::CasError>> {
        let store_error = |e| wasi_atomics::CasError::StoreError(wasi_err(e));
        let mut cas = self.table.delete(cas)?;
        match answer(cas.swap(&value).await, store_error)? {
            Ok(true) => Ok(Ok(())),
            Ok(false) => {
                let mut fresh = match answer(cas.store().new_cas(cas.key()).await, store_error)? {
                    Ok(fresh) => fresh,
                    Err(e) => return Ok(Err(e)),
                };
                if let Err(e) = answer(fresh.current().await, store_error)? {
                    return Ok(Err(e));
                }
                Ok(Err(wasi_atomics::CasError::CasFailed(
                    self.table.push(fresh)?,
                )))
            }
            Err(e) => Ok(Err(e)),
        }
    }
}

impl var::Host for HostState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, var::Error>> {
        Ok(self
            .context
            .resolver
            .component_value(&self.context.id, &name)
            .map_err(|e| match e {
                VariableError::InvalidName(n) => var::Error::InvalidName(n),
                e @ VariableError::Undefined { .. } => var::Error::Undefined(e.to_string()),
                e @ VariableError::Unset(_) => var::Error::Provider(e.to_string()),
            }))
    }
}
