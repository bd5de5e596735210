//! Application variables and component-variable templates, with Spin's precedence.
//!
//! A component reads only its own `[component.X.variables]`; each value there is a
//! template (`"https://{{ db_host }}/v1"`) over the application's `[variables]`. An
//! application variable takes its value from the first provider that has one, in
//! Spin's order: `--variable name=value` flags, then the `SPIN_VARIABLE_<NAME>`
//! environment variables (the process environment, then a `.env` file), then the
//! manifest default. A required variable that no provider supplies stops start-up.

use std::collections::BTreeMap;

use crate::error::LoadError;
use crate::manifest::{check_variable_name, VariableDecl};

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

/// A parsed `{{ name }}` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses a template; `{{ name }}` references an application variable.
    ///
    /// # Errors
    /// A message for an unclosed `{{`, a stray `}}`, or an invalid variable name.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let (literal, after) = rest.split_at(start);
            if literal.contains("}}") {
                return Err(format!("unmatched '}}}}' in template '{text}'"));
            }
            if !literal.is_empty() {
                parts.push(Part::Literal(literal.to_string()));
            }
            let after = &after[2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed '{{{{' in template '{text}'"))?;
            let name = after[..end].trim();
            check_variable_name(name).map_err(|e| format!("in template '{text}': {e}"))?;
            parts.push(Part::Variable(name.to_string()));
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            return Err(format!("unmatched '}}}}' in template '{text}'"));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The application variables the template references.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Expands the template with `lookup`.
    ///
    /// # Errors
    /// The first error `lookup` returns.
    pub fn render<E>(
        &self,
        mut lookup: impl FnMut(&str) -> Result<String, E>,
    ) -> Result<String, E> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => out.push_str(&lookup(name)?),
            }
        }
        Ok(out)
    }
}

/// Sources of application-variable values, in precedence order.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    /// `--variable name=value` flags (highest precedence).
    pub flags: BTreeMap<String, String>,
    /// The process environment, already filtered to `SPIN_VARIABLE_*`.
    pub env: BTreeMap<String, String>,
    /// `SPIN_VARIABLE_*` entries of the `.env` file.
    pub dotenv: BTreeMap<String, String>,
}

impl Providers {
    /// Takes `SPIN_VARIABLE_*` from an environment listing and from `.env` text.
    ///
    /// `.env` is read as Spin reads it, with the dotenvy crate: quotes, `export`,
    /// comments after values and `${VAR}` substitution behave the same.
    ///
    /// # Errors
    /// [`LoadError::Variable`] naming the first line dotenvy cannot parse (Spin starts
    /// with such a file and then fails every variable lookup that reaches it).
    pub fn from_env(
        env: impl IntoIterator<Item = (String, String)>,
        dotenv_text: Option<&str>,
    ) -> Result<Providers, LoadError> {
        let keep = |(k, v): (String, String)| k.starts_with(ENV_PREFIX).then_some((k, v));
        let dotenv = match dotenv_text {
            Some(text) => parse_dotenv(text)?.into_iter().filter_map(keep).collect(),
            None => BTreeMap::new(),
        };
        Ok(Providers {
            flags: BTreeMap::new(),
            env: env.into_iter().filter_map(keep).collect(),
            dotenv,
        })
    }

    fn lookup(&self, name: &str) -> Option<&String> {
        let env_key = format!("{ENV_PREFIX}{}", name.to_ascii_uppercase());
        self.flags
            .get(name)
            .or_else(|| self.env.get(&env_key))
            .or_else(|| self.dotenv.get(&env_key))
    }
}

/// Prefix of the environment variables that set application variables.
pub const ENV_PREFIX: &str = "SPIN_VARIABLE_";

/// The `KEY=VALUE` pairs of `.env` text, a later line winning over an earlier one.
fn parse_dotenv(text: &str) -> Result<Vec<(String, String)>, LoadError> {
    dotenvy::from_read_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LoadError::Variable(format!("invalid .env: {e}")))
}

/// Why a variable has no value; shown to the guest and in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    /// The name is not a valid variable name.
    #[error("invalid variable name '{0}'")]
    InvalidName(String),
    /// The component declares no such variable.
    #[error("no variable for {component:?}.{name:?}")]
    Undefined {
        /// Component id.
        component: String,
        /// Variable name.
        name: String,
    },
    /// An application variable is required and no provider supplies it.
    #[error("required variable '{0}' is not set (set SPIN_VARIABLE_{upper} or pass --variable {0}=VALUE)", upper = .0.to_ascii_uppercase())]
    Unset(String),
}

/// The resolved application variables plus every component's templates.
#[derive(Debug, Clone)]
pub struct Resolver {
    values: BTreeMap<String, Option<String>>,
    defaults: BTreeMap<String, Option<String>>,
    secrets: Vec<String>,
    components: BTreeMap<String, BTreeMap<String, Template>>,
}

impl Resolver {
    /// Resolves application variables and parses component templates.
    ///
    /// # Errors
    /// [`LoadError::Variable`] for a required variable without a value, a bad template,
    /// a template naming an undeclared variable, or a flag naming an undeclared variable.
    pub fn new<'a>(
        decls: &BTreeMap<String, VariableDecl>,
        components: impl IntoIterator<Item = (&'a String, &'a BTreeMap<String, String>)>,
        providers: &Providers,
    ) -> Result<Resolver, LoadError> {
        // Like Spin, a `--variable` the application does not declare is accepted and unused.
        let mut values = BTreeMap::new();
        for (name, decl) in decls {
            let value = providers
                .lookup(name)
                .cloned()
                .or_else(|| decl.default.clone());
            if value.is_none() && decl.required {
                return Err(LoadError::Variable(
                    VariableError::Unset(name.clone()).to_string(),
                ));
            }
            values.insert(name.clone(), value);
        }
        let mut parsed = BTreeMap::new();
        for (id, vars) in components {
            let mut templates = BTreeMap::new();
            for (name, text) in vars {
                let template = Template::parse(text).map_err(|e| {
                    LoadError::Variable(format!("component '{id}' variable '{name}': {e}"))
                })?;
                if let Some(missing) = template.references().find(|r| !decls.contains_key(*r)) {
                    return Err(LoadError::Variable(format!(
                        "component '{id}' variable '{name}' refers to '{missing}', which is not in [variables]"
                    )));
                }
                templates.insert(name.clone(), template);
            }
            parsed.insert(id.clone(), templates);
        }
        let secrets = decls
            .iter()
            .filter(|(_, d)| d.secret)
            .map(|(n, _)| n.clone())
            .collect();
        let defaults = decls
            .iter()
            .map(|(name, decl)| (name.clone(), decl.default.clone()))
            .collect();
        Ok(Resolver {
            values,
            defaults,
            secrets,
            components: parsed,
        })
    }

    /// An application variable's value.
    ///
    /// # Errors
    /// [`VariableError::Undefined`] (with component `""`) when not declared.
    pub fn app_value(&self, name: &str) -> Result<String, VariableError> {
        match self.values.get(name) {
            Some(Some(v)) => Ok(v.clone()),
            Some(None) => Err(VariableError::Unset(name.to_string())),
            None => Err(VariableError::Undefined {
                component: String::new(),
                name: name.to_string(),
            }),
        }
    }

    /// Expands a manifest expression (e.g. an outbound host) over application variables.
    ///
    /// # Errors
    /// A message for a bad template or an unknown or unset variable.
    pub fn expand(&self, text: &str) -> Result<String, String> {
        Template::parse(text)?.render(|name| self.app_value(name).map_err(|e| e.to_string()))
    }

    /// Expands a manifest expression with the manifest defaults alone, as Spin validates
    /// templated `allowed_outbound_hosts` entries at load: `None` when a referenced
    /// variable has no default (the expression is then checked only when first used).
    ///
    /// # Errors
    /// A message for a bad template.
    pub fn expand_with_defaults(&self, text: &str) -> Result<Option<String>, String> {
        let template = Template::parse(text)?;
        Ok(template
            .render(|name| match self.defaults.get(name) {
                Some(Some(v)) => Ok(v.clone()),
                _ => Err(()),
            })
            .ok())
    }

    /// What `variables::get(name)` returns to `component`.
    ///
    /// # Errors
    /// [`VariableError`] as the guest sees it.
    pub fn component_value(&self, component: &str, name: &str) -> Result<String, VariableError> {
        if check_variable_name(name).is_err() {
            return Err(VariableError::InvalidName(name.to_string()));
        }
        let template = self
            .components
            .get(component)
            .and_then(|vars| vars.get(name))
            .ok_or_else(|| VariableError::Undefined {
                component: component.to_string(),
                name: name.to_string(),
            })?;
        template.render(|app| self.app_value(app))
    }

    /// Whether an application variable is marked secret (its value is never logged).
    pub fn is_secret(&self, name: &str) -> bool {
        self.secrets.iter().any(|s| s == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(default: Option<&str>, required: bool) -> VariableDecl {
        VariableDecl {
            default: default.map(str::to_string),
            required,
            secret: false,
        }
    }

    #[test]
    fn templates_parse_and_render() {
        let cases: &[(&str, Result<&str, ()>)] = &[
            ("plain", Ok("plain")),
            ("{{host}}", Ok("H")),
            ("https://{{ host }}:{{port}}/v1", Ok("https://H:80/v1")),
            ("{{ host }}{{ host }}", Ok("HH")),
            ("", Ok("")),
            ("{{ host", Err(())),
            ("host }}", Err(())),
            ("{{ Host }}", Err(())),
            ("{{ }}", Err(())),
        ];
        for (text, want) in cases {
            let got = Template::parse(text).map(|t| {
                t.render(|n| Ok::<_, ()>(if n == "host" { "H".into() } else { "80".into() }))
                    .expect("render")
            });
            match want {
                Ok(w) => assert_eq!(got.as_deref(), Ok(*w), "{text}"),
                Err(()) => assert!(got.is_err(), "{text} should fail"),
            }
        }
    }

    /// (flag, env, dotenv, default, required) → expected value of variable `v`.
    #[test]
    fn precedence_is_flag_then_env_then_dotenv_then_default() {
        type Case = (
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
            bool,
            Result<&'static str, ()>,
        );
        let cases: &[Case] = &[
            (
                Some("flag"),
                Some("env"),
                Some("dot"),
                Some("def"),
                false,
                Ok("flag"),
            ),
            (
                None,
                Some("env"),
                Some("dot"),
                Some("def"),
                false,
                Ok("env"),
            ),
            (None, None, Some("dot"), Some("def"), false, Ok("dot")),
            (None, None, None, Some("def"), false, Ok("def")),
            (None, Some("env"), None, None, true, Ok("env")),
            (None, None, None, None, true, Err(())),
            (None, Some(""), None, Some("def"), false, Ok("")),
        ];
        for (i, (flag, env, dot, default, required, want)) in cases.iter().enumerate() {
            let mut providers = Providers::from_env(
                env.map(|v| ("SPIN_VARIABLE_V".to_string(), v.to_string())),
                dot.map(|v| format!("# comment\nSPIN_VARIABLE_V=\"{v}\"\nOTHER=1\n"))
                    .as_deref(),
            )
            .expect("valid .env");
            if let Some(f) = flag {
                providers.flags.insert("v".into(), f.to_string());
            }
            let decls = BTreeMap::from([("v".to_string(), decl(*default, *required))]);
            let comp = BTreeMap::from([("x".to_string(), "{{ v }}".to_string())]);
            let id = "c".to_string();
            let got = Resolver::new(&decls, [(&id, &comp)], &providers)
                .map(|r| r.component_value("c", "x").expect("resolves"));
            match want {
                Ok(w) => assert_eq!(got.as_deref().ok(), Some(*w), "case {i}"),
                Err(()) => assert!(got.is_err(), "case {i} should fail"),
            }
        }
    }

    #[test]
    fn dotenv_is_read_as_spin_reads_it() {
        let text = "# settings\nSPIN_VARIABLE_NEGATIVE_TTL=\"40s\" # comment\nexport SPIN_VARIABLE_TTL='5s'\nSPIN_VARIABLE_A=plain # note\nSPIN_VARIABLE_B=\"x\"\nSPIN_VARIABLE_C=${SPIN_VARIABLE_B}y\nIGNORED=1\n";
        let p = Providers::from_env([], Some(text)).expect("valid .env");
        let got: Vec<(&str, &str)> = p
            .dotenv
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("SPIN_VARIABLE_A", "plain"),
                ("SPIN_VARIABLE_B", "x"),
                ("SPIN_VARIABLE_C", "xy"),
                ("SPIN_VARIABLE_NEGATIVE_TTL", "40s"),
                ("SPIN_VARIABLE_TTL", "5s"),
            ]
        );
        let err = Providers::from_env([], Some("SPIN_VARIABLE_OK=1\nnot a pair\n"))
            .expect_err("a line dotenvy cannot parse");
        assert!(err.to_string().starts_with("invalid .env"), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[test]
    fn component_sees_only_its_own_variables() {
        let decls = BTreeMap::from([("v".to_string(), decl(Some("1"), false))]);
        let comp = BTreeMap::from([("x".to_string(), "{{ v }}".to_string())]);
        let id = "c".to_string();
        let r = Resolver::new(&decls, [(&id, &comp)], &Providers::default()).expect("ok");
        assert_eq!(r.component_value("c", "x"), Ok("1".into()));
        assert!(matches!(
            r.component_value("c", "v"),
            Err(VariableError::Undefined { .. })
        ));
        assert!(matches!(
            r.component_value("other", "x"),
            Err(VariableError::Undefined { .. })
        ));
        assert!(matches!(
            r.component_value("c", "Bad-Name"),
            Err(VariableError::InvalidName(_))
        ));
    }

    #[test]
    fn bad_references_fail_at_load() {
        let decls = BTreeMap::from([("v".to_string(), decl(Some("1"), false))]);
        let comp = BTreeMap::from([("x".to_string(), "{{ nope }}".to_string())]);
        let id = "c".to_string();
        assert!(Resolver::new(&decls, [(&id, &comp)], &Providers::default()).is_err());
    }

    #[test]
    fn an_undeclared_flag_is_accepted_and_unused() {
        let decls = BTreeMap::from([("v".to_string(), decl(Some("1"), false))]);
        let mut flags = Providers::default();
        flags.flags.insert("zzz".into(), "1".into());
        let r = Resolver::new(&decls, [], &flags).expect("Spin accepts an undeclared --variable");
        assert_eq!(r.app_value("v"), Ok("1".into()));
    }
}
