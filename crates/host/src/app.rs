//! Loading an application: manifest, runtime config, stores, variables, components.
//!
//! Everything that can be checked before serving is checked here, so a bad setup fails
//! at start-up with one line: unreadable or invalid manifest, missing `.wasm`, a module
//! that is not a component and cannot be adapted, a component that does not link, a
//! required variable without a value, a bad route, outbound host or cron expression, a
//! store label with nowhere to live. Each component is compiled once and
//! pre-instantiated; requests and cron ticks then only create a `Store` and instantiate.
//! What each load step took is kept per component ([`LoadTimes`]), and
//! [`App::instantiate`] instantiates without calling, so start-up costs can be measured.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

use crate::bindings::{cron2, cron3, key_value, variables, wasi_atomics, wasi_batch, wasi_store};
use crate::componentize::componentize_if_necessary;
use crate::cron_schedule::CronSchedule;
use crate::error::{InstantiateError, LoadError};
use crate::kv::{KvStores, RedisStore, SqliteFile, StoreBackend};
use crate::logs::Logger;
use crate::manifest::{Manifest, RouteDecl, SourceDecl, StaticResponse};
use crate::outbound::OutboundPolicy;
use crate::routes::{DuplicateRoute, Router};
use crate::runtime_config::{KvPlacement, RuntimeConfig};
use crate::state::{ComponentContext, HostState};
use crate::variables::{Providers, Resolver};

/// File name of the default key-value database in the state directory (Spin's).
pub const DEFAULT_KV_FILE: &str = "sqlite_key_value.db";

/// How to load and run an application.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Path of `spin.toml`.
    pub manifest: PathBuf,
    /// `--runtime-config-file`.
    pub runtime_config: Option<PathBuf>,
    /// State directory; defaults to `.spin` beside the manifest; empty means none.
    pub state_dir: Option<PathBuf>,
    /// Variable providers (flags, environment, `.env`).
    pub providers: Providers,
    /// Echo component output to the terminal.
    pub echo_component_output: bool,
    /// Use wasmtime's pooling allocator (faster instantiation under load).
    pub pooling: bool,
    /// `--env KEY=VALUE` for every component (overrides the manifest's `environment`).
    pub extra_env: Vec<(String, String)>,
}

impl AppOptions {
    /// Options for `manifest` with no providers and Spin's defaults.
    pub fn new(manifest: impl Into<PathBuf>) -> AppOptions {
        AppOptions {
            manifest: manifest.into(),
            runtime_config: None,
            state_dir: None,
            providers: Providers::default(),
            echo_component_output: true,
            pooling: true,
            extra_env: Vec::new(),
        }
    }
}

/// How a component is entered.
pub enum Entry {
    /// `wasi:http/incoming-handler` (spin-sdk `#[http_component]`).
    Http(wasmtime_wasi_http::p2::bindings::ProxyPre<HostState>),
    /// `spin:cron@3.0.0` async `handle-cron-event`.
    Cron3(cron3::SpinCronPre<HostState>),
    /// `fermyon:spin-cron@2.0.0` sync `handle-cron-event`.
    Cron2(cron2::SpinCronPre<HostState>),
}

/// How long each step of loading one component took in [`App::load`].
///
/// Start-up cost is dominated by these steps; the benchmark reports them per component.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadTimes {
    /// Reading the `.wasm` file and, for a core module, adapting it into a component.
    pub componentize: Duration,
    /// Compiling the component to native code (wasmtime's `Component::new`, Cranelift).
    pub compile: Duration,
    /// Linking it against the host's imports and checking its entry point.
    pub link: Duration,
}

/// A compiled, linked component with its context.
pub struct LoadedComponent {
    /// Grants, variables, outbound policy, log routing.
    pub context: Arc<ComponentContext>,
    /// The component's entry point, pre-instantiated.
    pub entry: Entry,
    /// What loading it cost.
    pub load_times: LoadTimes,
}

/// One `[[trigger.http]]` after loading.
pub enum HttpTarget {
    /// Served by a component.
    Component(String),
    /// Answered by the host.
    Static(StaticResponse),
}

/// One `[[trigger.cron]]` after loading.
pub struct CronJob {
    /// Component id.
    pub component: String,
    /// Parsed schedule.
    pub schedule: CronSchedule,
}

/// A loaded application, ready to serve.
pub struct App {
    /// The manifest as parsed.
    pub manifest: Manifest,
    /// The wasm engine shared by all components.
    pub engine: Engine,
    /// Components by id.
    pub components: BTreeMap<String, LoadedComponent>,
    /// Route table.
    pub router: Router,
    /// Targets, indexed like `[[trigger.http]]`.
    pub http_targets: Vec<HttpTarget>,
    /// Routes that never win (reported at start).
    pub duplicate_routes: Vec<DuplicateRoute>,
    /// Cron jobs.
    pub cron_jobs: Vec<CronJob>,
    /// Log routing.
    pub logger: Logger,
    /// The state directory in use (`None`: in-memory default store, no log files).
    pub state_dir: Option<PathBuf>,
    /// The runtime configuration in use.
    pub runtime: RuntimeConfig,
}

fn engine(pooling: bool) -> Result<Engine, LoadError> {
    let mut config = Config::new();
    // The current cron trigger generation calls an async-lifted export.
    config.wasm_component_model_async(true);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(1000)
            .total_memories(1000)
            .total_tables(1000)
            .total_core_instances(2000)
            .max_memory_size(256 << 20)
            // As Spin's engine: the first 2 MiB of a linear memory and 512 KiB of a table
            // stay resident between instances and are zeroed in place, rather than returned
            // to the kernel after every request and faulted back in by the next one (with a
            // TLB shootdown across cores each time).
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(512 << 10);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config).map_err(|e| LoadError::Engine(e.to_string()))
}

fn linker(engine: &Engine) -> Result<Linker<HostState>, LoadError> {
    let mut linker = Linker::<HostState>::new(engine);
    let engine_err = |e: wasmtime::Error| LoadError::Engine(e.to_string());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(engine_err)?;
    key_value::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(&mut linker, |s| s)
        .map_err(engine_err)?;
    variables::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(&mut linker, |s| s)
        .map_err(engine_err)?;
    wasi_store::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(&mut linker, |s| s)
        .map_err(engine_err)?;
    wasi_atomics::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(&mut linker, |s| s)
        .map_err(engine_err)?;
    wasi_batch::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(&mut linker, |s| s)
        .map_err(engine_err)?;
    Ok(linker)
}

fn open_stores(
    manifest: &Manifest,
    runtime: &RuntimeConfig,
    default_kv: &Path,
) -> Result<KvStores, LoadError> {
    let mut files: BTreeMap<PathBuf, SqliteFile> = BTreeMap::new();
    let mut open_file = |path: PathBuf, label: &str| -> Result<SqliteFile, LoadError> {
        if let Some(f) = files.get(&path) {
            return Ok(f.clone());
        }
        let file = SqliteFile::open(&path).map_err(|e| LoadError::KeyValue {
            label: label.to_string(),
            reason: e.0,
        })?;
        files.insert(path, file.clone());
        Ok(file)
    };
    let mut stores = KvStores::default();
    let mut labels: Vec<&String> = manifest
        .component
        .values()
        .flat_map(|c| c.key_value_stores.iter())
        .collect();
    labels.sort();
    labels.dedup();
    for label in labels {
        let store = match runtime.key_value_stores.get(label) {
            Some(KvPlacement::Redis(url)) => StoreBackend::Redis(RedisStore::new(url).map_err(|e| {
                LoadError::KeyValue {
                    label: label.clone(),
                    reason: e.0,
                }
            })?),
            Some(KvPlacement::Spin(Some(path))) => {
                StoreBackend::Sqlite(open_file(path.clone(), label)?.store(label))
            }
            Some(KvPlacement::Spin(None)) => {
                StoreBackend::Sqlite(open_file(default_kv.to_path_buf(), label)?.store(label))
            }
            None if label == "default" => {
                StoreBackend::Sqlite(open_file(default_kv.to_path_buf(), label)?.store(label))
            }
            None => {
                return Err(LoadError::KeyValue {
                    label: label.clone(),
                    reason: "no such store: only 'default' exists unless the runtime config defines it (--runtime-config-file)".into(),
                })
            }
        };
        stores.insert(label.clone(), store);
    }
    Ok(stores)
}

/// A component's outbound policy, with Spin's timing of the checks: a literal entry is
/// checked now; a templated one now if the manifest defaults alone resolve it, and
/// otherwise when first used, so an entry made invalid by a provided value (a path in
/// `--variable db_api_url=...`) leaves the application running and every outbound request
/// of the component refused, with the reason logged.
fn outbound_policy<'a>(
    resolver: &Resolver,
    entries: impl Iterator<Item = &'a String>,
) -> Result<OutboundPolicy, (String, String)> {
    let mut expanded = Vec::new();
    let mut literals = Vec::new();
    for entry in entries {
        let template = crate::variables::Template::parse(entry).map_err(|e| (entry.clone(), e))?;
        if template.references().next().is_none() {
            literals.push(entry.as_str());
            expanded.push(entry.clone());
            continue;
        }
        if let Some(with_defaults) = resolver
            .expand_with_defaults(entry)
            .map_err(|e| (entry.clone(), e))?
        {
            crate::outbound::AllowedHost::parse(&with_defaults).map_err(|reason| {
                (
                    entry.clone(),
                    format!("using default variable value(s) it results in invalid config {with_defaults:?}: {reason}"),
                )
            })?;
        }
        expanded.push(resolver.expand(entry).map_err(|e| (entry.clone(), e))?);
    }
    OutboundPolicy::new(literals.iter().copied())?;
    Ok(
        match OutboundPolicy::new(expanded.iter().map(String::as_str)) {
            Ok(policy) => policy,
            Err((entry, reason)) => OutboundPolicy::broken(format!("{entry:?}: {reason}")),
        },
    )
}

/// Interfaces Spin serves that this host does not, by import name without version.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("fermyon:spin/sqlite", "SQLite"),
    ("spin:sqlite/sqlite", "SQLite"),
    ("fermyon:spin/redis", "Redis"),
    ("fermyon:spin/redis-types", "Redis"),
    ("fermyon:spin/rdbms-types", "PostgreSQL and MySQL"),
    ("spin:redis/redis", "Redis"),
    ("fermyon:spin/mqtt", "MQTT"),
    ("spin:mqtt/mqtt", "MQTT"),
    ("fermyon:spin/postgres", "PostgreSQL"),
    ("spin:postgres/postgres", "PostgreSQL"),
    ("fermyon:spin/mysql", "MySQL"),
    ("spin:mysql/mysql", "MySQL"),
    ("fermyon:spin/llm", "Serverless AI (LLM)"),
    ("fermyon:spin/http", "Spin 1 outbound HTTP"),
    ("fermyon:spin/config", "Spin 1 config"),
    (
        "spin:key-value/key-value",
        "key-value (spin:key-value@3, spin-sdk 6+)",
    ),
    (
        "spin:variables/variables",
        "variables (spin:variables@3, spin-sdk 6+)",
    ),
    ("wasi:config/store", "wasi:config variables"),
    ("wasi:sockets/tcp", "TCP sockets"),
    ("wasi:sockets/tcp-create-socket", "TCP sockets"),
    ("wasi:sockets/udp", "UDP sockets"),
    ("wasi:sockets/udp-create-socket", "UDP sockets"),
    ("wasi:sockets/ip-name-lookup", "DNS lookups (wasi:sockets)"),
];

/// The first import of `component` that Spin serves and this host does not, as one line.
fn unsupported_import(engine: &Engine, component: &Component) -> Option<String> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        let unversioned = name.split('@').next().unwrap_or(name);
        if let Some((_, what)) = UNSUPPORTED.iter().find(|(n, _)| *n == unversioned) {
            return Some(format!(
                "imports {name} ({what}), which the embedded host does not implement; run this application with `spin up`"
            ));
        }
    }
    None
}

/// wasmtime's linking error as one line, naming the import it could not satisfy.
fn link_error(text: &str) -> String {
    let missing = text
        .split_once("imports instance `")
        .or_else(|| text.split_once("imports function `"))
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name);
    match missing {
        Some(name) => format!(
            "imports {name}, which the embedded host does not implement; if Spin serves it, run this application with `spin up`"
        ),
        None => format!("cannot link: {}", one_line(text)),
    }
}

/// Joins a multi-line message into one line.
fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Spin 1's `allowed_http_hosts` entries as `allowed_outbound_hosts` entries.
fn legacy_http_hosts(entries: &[String]) -> Vec<String> {
    entries
        .iter()
        .flat_map(|e| match e.as_str() {
            "insecure:allow-all" => vec!["http://*:*".to_string(), "https://*:*".to_string()],
            "self" => vec!["http://self".to_string()],
            e if e.contains("://") => vec![e.to_string()],
            e => vec![format!("http://{e}"), format!("https://{e}")],
        })
        .collect()
}

impl App {
    /// Loads, validates and compiles the application.
    ///
    /// # Errors
    /// A [`LoadError`] naming the first problem found.
    pub fn load(options: &AppOptions) -> Result<App, LoadError> {
        let manifest = Manifest::from_file(&options.manifest)?;
        // Like Spin, paths derive from the manifest path as given (`spin.toml` → `.spin`).
        let base = options
            .manifest
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf();
        // `--state-dir ""` means no state directory: the default store lives in memory
        // and component output goes only to the terminal, as with Spin.
        let state_dir = match &options.state_dir {
            Some(dir) if dir.as_os_str().is_empty() => None,
            Some(dir) => Some(dir.clone()),
            None => Some(base.join(".spin")),
        };
        let runtime = match &options.runtime_config {
            Some(path) => RuntimeConfig::from_file(path)?,
            None => RuntimeConfig::default(),
        };
        let logger = Logger::new(
            state_dir.as_ref().map(|d| d.join("logs")),
            options.echo_component_output,
        );
        let resolver = Arc::new(Resolver::new(
            &manifest.variables,
            manifest.component.iter().map(|(id, c)| (id, &c.variables)),
            &options.providers,
        )?);
        let default_kv = state_dir
            .as_ref()
            .map_or_else(|| PathBuf::from(":memory:"), |d| d.join(DEFAULT_KV_FILE));
        let stores = Arc::new(open_stores(&manifest, &runtime, &default_kv)?);

        let (router, duplicate_routes) = Router::build(
            manifest
                .trigger
                .http
                .iter()
                .enumerate()
                .filter_map(|(i, t)| match &t.route {
                    RouteDecl::Path(route) => Some((
                        i,
                        t.component.as_deref().unwrap_or("static_response"),
                        route.as_str(),
                    )),
                    RouteDecl::Private { .. } => None,
                }),
        )
        .map_err(|(route, reason)| LoadError::BadRoute { route, reason })?;
        let http_targets = manifest
            .trigger
            .http
            .iter()
            .map(|t| match (&t.component, &t.static_response) {
                (Some(id), _) => HttpTarget::Component(id.clone()),
                (None, Some(sr)) => HttpTarget::Static(sr.clone()),
                (None, None) => HttpTarget::Static(StaticResponse {
                    status_code: Some(500),
                    headers: BTreeMap::new(),
                    body: None,
                }),
            })
            .collect();
        let cron_jobs = manifest
            .trigger
            .cron
            .iter()
            .map(|t| {
                CronSchedule::parse(&t.cron_expression)
                    .map(|schedule| CronJob {
                        component: t.component.clone(),
                        schedule,
                    })
                    .map_err(|reason| LoadError::BadCron {
                        component: t.component.clone(),
                        expression: t.cron_expression.clone(),
                        reason,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let engine = engine(options.pooling)?;
        let linker = linker(&engine)?;
        let cron_ids: Vec<&str> = manifest
            .trigger
            .cron
            .iter()
            .map(|t| t.component.as_str())
            .collect();
        let mut components = BTreeMap::new();
        for (id, decl) in &manifest.component {
            let bad = |reason: String| LoadError::BadComponent {
                component: id.clone(),
                reason,
            };
            let legacy = legacy_http_hosts(&decl.allowed_http_hosts);
            if !legacy.is_empty() {
                logger.host("Warning: Use of the deprecated field `allowed_http_hosts` - to fix, replace `allowed_http_hosts` with `allowed_outbound_hosts = [...]`");
            }
            let outbound =
                outbound_policy(&resolver, decl.allowed_outbound_hosts.iter().chain(&legacy))
                    .map_err(|(entry, reason)| LoadError::BadOutboundHost {
                        component: id.clone(),
                        entry,
                        reason,
                    })?;
            let SourceDecl::Path(source) = &decl.source else {
                return Err(bad("remote sources are not supported".into()));
            };
            let path = base.join(source);
            let started = Instant::now();
            let bytes = std::fs::read(&path).map_err(|e| LoadError::MissingWasm {
                component: id.clone(),
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let bytes = componentize_if_necessary(&bytes).map_err(bad)?;
            let componentized = Instant::now();
            let component = Component::new(&engine, &bytes).map_err(|e| bad(format!("{e:#}")))?;
            let compiled = Instant::now();
            // Like Spin, an import the host does not provide is a start-up error; one
            // that Spin serves and this host does not is named, with the way to run it.
            if let Some(refusal) = unsupported_import(&engine, &component) {
                return Err(bad(refusal));
            }
            let pre: InstancePre<HostState> = linker
                .instantiate_pre(&component)
                .map_err(|e| bad(link_error(&format!("{e:#}"))))?;
            let entry = if cron_ids.contains(&id.as_str()) {
                match cron3::SpinCronPre::new(pre.clone()) {
                    Ok(p) => Entry::Cron3(p),
                    Err(e3) => match cron2::SpinCronPre::new(pre) {
                        Ok(p) => Entry::Cron2(p),
                        Err(e2) => {
                            return Err(bad(format!(
                                "does not export a cron handler (spin:cron@3.0.0: {e3}; fermyon:spin-cron@2.0.0: {e2})"
                            )))
                        }
                    },
                }
            } else {
                Entry::Http(
                    wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre).map_err(|e| {
                        bad(format!(
                            "does not export wasi:http/incoming-handler@0.2.x: {e}"
                        ))
                    })?,
                )
            };
            let load_times = LoadTimes {
                componentize: componentized - started,
                compile: compiled - componentized,
                link: compiled.elapsed(),
            };
            let context = Arc::new(ComponentContext {
                id: id.clone(),
                kv_grants: decl.key_value_stores.clone(),
                stores: stores.clone(),
                resolver: resolver.clone(),
                outbound,
                environment: {
                    let mut env = decl.environment.clone();
                    env.extend(options.extra_env.iter().cloned());
                    env.into_iter().collect()
                },
                logger: logger.clone(),
            });
            components.insert(
                id.clone(),
                LoadedComponent {
                    context,
                    entry,
                    load_times,
                },
            );
        }
        for (i, t) in manifest.trigger.http.iter().enumerate() {
            if let Some(id) = &t.component {
                if !matches!(components.get(id).map(|c| &c.entry), Some(Entry::Http(_))) {
                    return Err(LoadError::BadComponent {
                        component: id.clone(),
                        reason: format!("[[trigger.http]] #{} needs an HTTP component, but it is used by a cron trigger", i + 1),
                    });
                }
            }
        }
        Ok(App {
            manifest,
            engine,
            components,
            router,
            http_targets,
            duplicate_routes,
            cron_jobs,
            logger,
            state_dir,
            runtime,
        })
    }

    /// Instantiates component `id` in a fresh store, as every request and cron tick does
    /// before calling its handler, then drops the instance without calling it.
    ///
    /// Serving never uses this; it exists so that instantiation cost can be measured on its
    /// own (the benchmark's start-up figure).
    ///
    /// # Errors
    /// [`InstantiateError`] when there is no such component or instantiation fails.
    pub async fn instantiate(&self, id: &str) -> Result<(), InstantiateError> {
        let loaded = self
            .components
            .get(id)
            .ok_or_else(|| InstantiateError::UnknownComponent(id.to_string()))?;
        let failed = |e: wasmtime::Error| InstantiateError::Failed {
            component: id.to_string(),
            reason: format!("{e:#}"),
        };
        let mut store = Store::new(&self.engine, HostState::new(loaded.context.clone()));
        match &loaded.entry {
            Entry::Http(pre) => pre.instantiate_async(&mut store).await.map(drop),
            Entry::Cron3(pre) => pre.instantiate_async(&mut store).await.map(drop),
            Entry::Cron2(pre) => pre.instantiate_async(&mut store).await.map(drop),
        }
        .map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn instantiating_an_unknown_component_is_an_error() {
        let dir = std::env::temp_dir().join(format!("cache-sync-app-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let manifest = dir.join("spin.toml");
        std::fs::write(
            &manifest,
            "spin_manifest_version = 2\n[application]\nname = \"t\"\n[[trigger.http]]\nroute = \"/...\"\nstatic_response = { status_code = 204 }\n",
        )
        .expect("write manifest");
        let mut options = AppOptions::new(&manifest);
        options.state_dir = Some(PathBuf::new());
        options.pooling = false;
        let app = App::load(&options).expect("a static-only app loads");
        let err = app.instantiate("web").await.expect_err("no such component");
        assert!(matches!(err, InstantiateError::UnknownComponent(ref id) if id == "web"));
        assert_eq!(err.to_string(), "no component 'web'");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A component whose only content is an import of instance `name`.
    fn importing(name: &str) -> Vec<u8> {
        let mut component = wasm_encoder::Component::new();
        let mut instance = wasm_encoder::InstanceType::new();
        instance
            .ty()
            .function()
            .params(std::iter::empty::<(&str, wasm_encoder::ComponentValType)>())
            .result(None);
        instance.export("f", wasm_encoder::ComponentTypeRef::Func(0));
        let mut types = wasm_encoder::ComponentTypeSection::new();
        types.instance(&instance);
        component.section(&types);
        let mut imports = wasm_encoder::ComponentImportSection::new();
        imports.import(name, wasm_encoder::ComponentTypeRef::Instance(0));
        component.section(&imports);
        component.finish()
    }

    #[test]
    fn unsupported_interfaces_are_refused_at_load_with_one_line() {
        let dir = std::env::temp_dir().join(format!("cache-sync-app-unsup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cases = [
            ("fermyon:spin/sqlite@2.0.0", Some("SQLite")),
            ("spin:sqlite/sqlite@3.0.0", Some("SQLite")),
            ("fermyon:spin/redis@2.0.0", Some("Redis")),
            ("fermyon:spin/mqtt@2.0.0", Some("MQTT")),
            ("spin:postgres/postgres@4.0.0", Some("PostgreSQL")),
            ("wasi:sockets/tcp@0.2.0", Some("TCP sockets")),
            ("example:unknown/thing@1.0.0", None),
        ];
        for (i, (name, what)) in cases.iter().enumerate() {
            let wasm = dir.join(format!("c{i}.wasm"));
            std::fs::write(&wasm, importing(name)).expect("write component");
            let manifest = dir.join(format!("spin{i}.toml"));
            std::fs::write(
                &manifest,
                format!("spin_manifest_version = 2\n[application]\nname = \"t\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n[component.c]\nsource = \"c{i}.wasm\"\n"),
            )
            .expect("write manifest");
            let mut options = AppOptions::new(&manifest);
            options.state_dir = Some(PathBuf::new());
            options.pooling = false;
            let err = App::load(&options)
                .err()
                .expect("refused at load")
                .to_string();
            assert!(!err.contains('\n'), "one line: {err}");
            assert!(err.contains(name) && err.contains("spin up"), "{err}");
            if let Some(what) = what {
                assert!(err.contains(&format!("({what})")), "{err}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
