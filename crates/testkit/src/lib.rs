//! Test support shared by the end-to-end tests (`tests/`), the host's tests and the
//! benchmark: one builder for the `spin.toml` they run.
//!
//! Every cache variable is declared from the core's own list (`cache_core::config::var::ALL`)
//! with an empty default (the core's default) and templated into the gateway and the flush
//! component, each on its own and all together in `cache_settings`
//! (`cache_core::config::bundle`), so a new knob reaches every test app and the benchmark without a copied list;
//! tests set values with `--variable`-style flags or [`Manifest::default`]. `db_api_url` is
//! required unless given a default: Spin refuses at load an `allowed_outbound_hosts` entry
//! that an empty default would make invalid. The rate limits default to `off`: the suites
//! and the benchmark send thousands of requests from one loopback address, which the
//! production budgets would refuse; the tests of the limits set their own.

#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cache_core::config::{bundle, var};

/// A manifest under construction. Component sources are paths (or `{placeholders}` the
/// caller replaces).
#[derive(Debug, Clone)]
pub struct Manifest {
    name: String,
    defaults: BTreeMap<String, String>,
    triggers: String,
    components: Vec<Component>,
    stores: Vec<String>,
}

#[derive(Debug, Clone)]
struct Component {
    id: String,
    source: String,
    outbound: Option<String>,
    variables: bool,
}

impl Manifest {
    /// An application called `name`, with no component yet.
    #[must_use]
    pub fn new(name: &str) -> Manifest {
        let off = [
            var::RATE_LIMIT_READ,
            var::RATE_LIMIT_WRITE,
            var::RATE_LIMIT_ADMIN,
        ];
        Manifest {
            name: name.to_owned(),
            defaults: off
                .iter()
                .map(|v| ((*v).to_owned(), "off".to_owned()))
                .collect(),
            triggers: String::new(),
            components: Vec::new(),
            stores: vec!["default".to_owned()],
        }
    }

    /// Grants every component the store `label` too (it must be defined in the runtime
    /// config, as in Spin).
    #[must_use]
    pub fn store(mut self, label: &str) -> Manifest {
        self.stores.push(label.to_owned());
        self
    }

    /// Gives `variable` a default other than empty.
    #[must_use]
    pub fn default(mut self, variable: &str, value: &str) -> Manifest {
        self.defaults.insert(variable.to_owned(), value.to_owned());
        self
    }

    /// The probe test component on `/probe/...`, with the `default` store.
    #[must_use]
    pub fn probe(mut self, source: &str) -> Manifest {
        self.http("/probe/...", "probe");
        self.component("probe", source, None, false);
        self
    }

    /// The gateway on `/...`, with the `default` store, outbound access to `outbound` and
    /// every cache variable.
    #[must_use]
    pub fn gateway(mut self, source: &str, outbound: &str) -> Manifest {
        self.http("/...", "gateway");
        self.component("gateway", source, Some(outbound), true);
        self
    }

    /// The flush component on the cron schedule `cron`, with the `default` store, outbound
    /// access to `outbound` and every cache variable.
    #[must_use]
    pub fn flush(mut self, source: &str, cron: &str, outbound: &str) -> Manifest {
        let _ = write!(
            self.triggers,
            "[[trigger.cron]]\ncomponent = \"flush\"\ncron_expression = \"{cron}\"\n"
        );
        self.component("flush", source, Some(outbound), true);
        self
    }

    /// The manifest text.
    #[must_use]
    pub fn render(&self) -> String {
        let mut m = format!(
            "spin_manifest_version = 2\n[application]\nname = \"{}\"\n[variables]\n",
            self.name
        );
        for v in var::ALL {
            match self.defaults.get(*v) {
                Some(default) => {
                    let _ = writeln!(m, "{v} = {{ default = \"{default}\" }}");
                }
                None if *v == var::DB_API_URL => {
                    let _ = writeln!(m, "{v} = {{ required = true }}");
                }
                None => {
                    let _ = writeln!(m, "{v} = {{ default = \"\" }}");
                }
            }
        }
        m.push_str(&self.triggers);
        let stores: Vec<String> = self.stores.iter().map(|s| format!("\"{s}\"")).collect();
        for c in &self.components {
            let id = &c.id;
            let _ = write!(
                m,
                "[component.{id}]\nsource = \"{}\"\nkey_value_stores = [{}]\n",
                c.source,
                stores.join(", ")
            );
            if let Some(host) = &c.outbound {
                let _ = writeln!(m, "allowed_outbound_hosts = [\"{host}\"]");
            }
            if c.variables {
                let _ = writeln!(m, "[component.{id}.variables]");
                for v in var::ALL {
                    let _ = writeln!(m, "{v} = \"{{{{ {v} }}}}\"");
                }
                // All of them in one lookup, as the shipped manifest wires the gateway.
                let bundled = bundle::template().replace(bundle::SEPARATOR, "\\u001F");
                let _ = writeln!(m, "{} = \"{bundled}\"", bundle::VARIABLE);
            }
        }
        m
    }

    fn http(&mut self, route: &str, component: &str) {
        let _ = write!(
            self.triggers,
            "[[trigger.http]]\nroute = \"{route}\"\ncomponent = \"{component}\"\n"
        );
    }

    fn component(&mut self, id: &str, source: &str, outbound: Option<&str>, variables: bool) {
        self.components.push(Component {
            id: id.to_owned(),
            source: source.to_owned(),
            outbound: outbound.map(str::to_owned),
            variables,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cache_variable_is_declared_and_handed_to_both_components() {
        let m = Manifest::new("t")
            .default("ttl", "5s")
            .probe("p.wasm")
            .gateway("g.wasm", "http://127.0.0.1:*")
            .flush("f.wasm", "* * * * * *", "{{ db_api_url }}")
            .render();
        for v in var::ALL {
            assert!(m.contains(&format!("\n{v} = {{ ")), "{v} declared");
            assert_eq!(
                m.matches(&format!("{v} = \"{{{{ {v} }}}}\"")).count(),
                2,
                "{v} templated into the gateway and the flush component"
            );
        }
        assert_eq!(
            m.matches("\ncache_settings = \"db_api_url={{ db_api_url }}\\u001Fdb_api_token=")
                .count(),
            2
        );
        assert!(m.contains("\nttl = { default = \"5s\" }"));
        assert!(m.contains("\nrate_limit_admin = { default = \"off\" }"));
        assert!(m.contains("\ndb_api_url = { required = true }"));
        assert!(m.contains("route = \"/probe/...\"") && m.contains("cron_expression"));
        assert_eq!(m.matches("key_value_stores = [\"default\"]\n").count(), 3);
        let two = Manifest::new("t")
            .store("buffer")
            .gateway("g.wasm", "x")
            .render();
        assert!(two.contains("key_value_stores = [\"default\", \"buffer\"]\n"));
    }
}
