//! `allowed_outbound_hosts`: which destinations a component's outbound HTTP may reach.
//!
//! Entries are `scheme://host[:port]` after template expansion (templates may only use
//! application variables, and are expanded once at load). `*` may stand for the scheme,
//! the host, a leading host label (`*.example.com`) or the port; a port may be a range
//! (`8000..8080`, end exclusive, as in Spin). Without a port the scheme's default applies,
//! so `http://127.0.0.1` allows port 80 only. A request that matches no entry is
//! refused with `HttpRequestDenied` before any connection is made.

use std::ops::Range;

/// Port part of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PortRule {
    Any,
    Range(Range<u16>),
}

/// Host part of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    Any,
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com` (not the apex).
    Subdomains(String),
}

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostRule,
    port: PortRule,
}

/// A component's outbound policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    allowed: Vec<AllowedHost>,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "redis" => Some(6379),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "mqtt" => Some(1883),
        _ => None,
    }
}

impl AllowedHost {
    /// Parses one entry (already template-expanded).
    ///
    /// # Errors
    /// A message naming what is wrong with the entry.
    pub fn parse(entry: &str) -> Result<AllowedHost, String> {
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or("must be of the form scheme://host[:port]")?;
        if scheme.is_empty() || rest.is_empty() {
            return Err("must be of the form scheme://host[:port]".into());
        }
        let scheme = scheme.to_ascii_lowercase();
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err("must not contain a path".into());
        }
        let (host, port) = split_host_port(rest)?;
        let host = host.to_ascii_lowercase();
        let host_rule = if host == "*" {
            HostRule::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(format!("invalid host pattern '{host}'"));
            }
            HostRule::Subdomains(format!(".{suffix}"))
        } else if host.contains('*') {
            return Err(format!(
                "invalid host pattern '{host}': '*' may only be a whole host or a leading label"
            ));
        } else {
            HostRule::Exact(host)
        };
        let scheme_rule = (scheme != "*").then_some(scheme);
        let port_rule = match port {
            Some("*") => PortRule::Any,
            Some(p) => match p.split_once("..") {
                Some((lo, hi)) => {
                    let lo = parse_port(lo)?;
                    let hi = parse_port(hi)?;
                    if lo >= hi {
                        return Err(format!("empty port range '{p}'"));
                    }
                    PortRule::Range(lo..hi)
                }
                None => {
                    let port = parse_port(p)?;
                    PortRule::Range(port..port.saturating_add(1))
                }
            },
            None => {
                let scheme = scheme_rule
                    .as_deref()
                    .ok_or("a port is required when the scheme is '*'")?;
                let port = default_port(scheme)
                    .ok_or_else(|| format!("no default port for scheme '{scheme}'; give one"))?;
                PortRule::Range(port..port + 1)
            }
        };
        Ok(AllowedHost {
            scheme: scheme_rule,
            host: host_rule,
            port: port_rule,
        })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host_ok = match &self.host {
            HostRule::Any => true,
            HostRule::Exact(h) => h == host,
            HostRule::Subdomains(suffix) => {
                host.ends_with(suffix.as_str()) && host.len() > suffix.len()
            }
        };
        let port_ok = match &self.port {
            PortRule::Any => true,
            PortRule::Range(r) => r.contains(&port),
        };
        scheme_ok && host_ok && port_ok
    }
}

fn split_host_port(rest: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed '[' in IPv6 host")?;
        return match after {
            "" => Ok((host, None)),
            p => p
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or_else(|| "junk after IPv6 host".to_string()),
        };
    }
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Ok((host, Some(port))),
        Some(_) => Err("missing host".into()),
        None => Ok((rest, None)),
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    text.parse::<u16>()
        .map_err(|_| format!("invalid port '{text}'"))
}

impl OutboundPolicy {
    /// Builds a policy from already-expanded entries.
    ///
    /// # Errors
    /// The first entry that does not parse, with the reason.
    pub fn new<'a>(
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<OutboundPolicy, (String, String)> {
        let allowed = entries
            .into_iter()
            .map(|e| AllowedHost::parse(e).map_err(|reason| (e.to_string(), reason)))
            .collect::<Result<_, _>>()?;
        Ok(OutboundPolicy { allowed })
    }

    /// Whether `uri` may be requested. A URI without scheme or host is refused.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let Some(scheme) = uri.scheme_str().map(str::to_ascii_lowercase) else {
            return false;
        };
        let Some(host) = uri.host() else {
            return false;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let Some(port) = uri.port_u16().or_else(|| default_port(&scheme)) else {
            return false;
        };
        self.allowed.iter().any(|a| a.allows(&scheme, &host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(entries: &[&str], url: &str, allowed: bool) {
        let policy = OutboundPolicy::new(entries.iter().copied()).expect("valid entries");
        let uri: http::Uri = url.parse().expect("valid url");
        assert_eq!(policy.allows(&uri), allowed, "{entries:?} vs {url}");
    }

    #[test]
    fn matching_table() {
        let rows: &[(&[&str], &str, bool)] = &[
            (
                &["http://127.0.0.1:3001"],
                "http://127.0.0.1:3001/v1/items/a/b",
                true,
            ),
            (&["http://127.0.0.1:3001"], "http://127.0.0.1:3002/", false),
            (&["http://127.0.0.1:3001"], "https://127.0.0.1:3001/", false),
            (&["http://127.0.0.1"], "http://127.0.0.1/", true),
            (&["http://127.0.0.1"], "http://127.0.0.1:8080/", false),
            (
                &["https://db.example.com"],
                "https://DB.example.com/x",
                true,
            ),
            (
                &["https://db.example.com"],
                "https://db.example.com:443/x",
                true,
            ),
            (&["https://*.example.com"], "https://a.b.example.com/", true),
            (&["https://*.example.com"], "https://example.com/", false),
            (&["*://localhost:*"], "http://localhost:9/", true),
            (&["http://*:*"], "http://anything:1234/", true),
            (
                &["http://localhost:8000..8002"],
                "http://localhost:8001/",
                true,
            ),
            (
                &["http://localhost:8000..8002"],
                "http://localhost:8002/",
                false,
            ),
            (&["http://[::1]:3001"], "http://[::1]:3001/", true),
            (&[], "http://127.0.0.1:3001/", false),
            (&["http://a:1", "http://b:2"], "http://b:2/", true),
        ];
        for (entries, url, allowed) in rows {
            check(entries, url, *allowed);
        }
    }

    #[test]
    fn relative_urls_are_refused() {
        let policy = OutboundPolicy::new(["http://*:*"]).expect("valid");
        assert!(!policy.allows(&"/relative".parse().expect("uri")));
    }

    #[test]
    fn bad_entries_are_rejected() {
        for entry in [
            "127.0.0.1:3001",
            "http://",
            "http://host/path",
            "http://host:port",
            "http://host:70000",
            "*://host",
            "http://a*b.com",
            "http://host:9..3",
            "ftp://host",
        ] {
            assert!(
                AllowedHost::parse(entry).is_err(),
                "{entry} should be rejected"
            );
        }
    }
}
