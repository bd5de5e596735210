//! `allowed_outbound_hosts`: which destinations a component's outbound HTTP may reach.
//!
//! The grammar is Spin's (`spin-outbound-networking-config`, `allowed_hosts.rs`): an
//! entry is `scheme://host[:port]`, surrounding spaces ignored. The scheme is `*` or
//! letters (compared as written). The host is `*`, `self` / `self.alt` (relative
//! requests, which this host does not serve), a CIDR block (`127.0.0.0/24`, host bits
//! dropped), `*.example.com` (any name ending in `.example.com`, not the apex), or a
//! literal name or address. The port is `*`, a number, or a range `8000..8080` (end
//! exclusive; an empty range matches nothing); without one the scheme's well-known port
//! applies (http 80, https 443, redis, postgres, mysql, mqtt), and a scheme without one
//! needs a port. A trailing `/` is allowed, a path is not. A request that matches no entry
//! is refused with `HttpRequestDenied` before any connection is made.
//!
//! When entries are checked is Spin's too: a literal entry at load; a templated one at
//! load only if the manifest defaults alone resolve it, otherwise at the first outbound
//! request, where an entry that does not parse makes every request of the component
//! refused (logged once per instance, as Spin logs it per instance).

use std::net::IpAddr;
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
    /// `self` / `self.alt`: relative requests only.
    ToSelf,
    /// `*.example.com`: the suffix `.example.com`.
    Subdomains(String),
    Literal(url::Host),
    Cidr(ipnet::IpNet),
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
    /// Why the entries could not be parsed when they were resolved after load: every
    /// request is then refused.
    broken: Option<String>,
}

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
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
        let entry = entry.trim();
        let Some((scheme, rest)) = entry.split_once("://") else {
            return Err(format!(
                "{entry:?} does not contain a scheme: hosts must be of the form <scheme>://<host>[:<port>], with '*' wildcards allowed for each"
            ));
        };
        let (host, after) = rest.rsplit_once(':').unwrap_or((rest, ""));
        let port = match after.split_once('/') {
            Some((_, path)) if !path.is_empty() => {
                return Err(format!("{entry:?} has a path but is not allowed to"))
            }
            Some((port, _)) => port,
            None => after,
        };
        let port = parse_port_rule(port, scheme)
            .map_err(|e| format!("invalid allowed host port {port:?}: {e}"))?;
        let scheme = parse_scheme(scheme)
            .map_err(|e| format!("invalid allowed host scheme {scheme:?}: {e}"))?;
        let host = parse_host(host).map_err(|e| format!("invalid allowed host {host:?}: {e}"))?;
        Ok(AllowedHost { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &url::Host, port: Option<u16>) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host_ok = match (&self.host, host) {
            (HostRule::Any, _) => true,
            (HostRule::Subdomains(suffix), url::Host::Domain(d)) => d.ends_with(suffix.as_str()),
            (HostRule::Literal(literal), host) => literal == host,
            (HostRule::Cidr(net), url::Host::Ipv4(ip)) => net.contains(&IpAddr::V4(*ip)),
            (HostRule::Cidr(net), url::Host::Ipv6(ip)) => net.contains(&IpAddr::V6(*ip)),
            _ => false,
        };
        let port_ok = match &self.port {
            PortRule::Any => true,
            PortRule::Range(r) => port
                .or_else(|| well_known_port(scheme))
                .is_some_and(|p| r.contains(&p)),
        };
        scheme_ok && host_ok && port_ok
    }
}

fn parse_scheme(scheme: &str) -> Result<Option<String>, String> {
    if scheme == "*" {
        return Ok(None);
    }
    if scheme.starts_with('{') {
        return Err("scheme lists are not supported".into());
    }
    if scheme.is_empty() || !scheme.chars().all(char::is_alphabetic) {
        return Err("only alphabetic characters are allowed".into());
    }
    Ok(Some(scheme.to_string()))
}

fn parse_host(host: &str) -> Result<HostRule, String> {
    let host = host.trim();
    match host {
        "*" => return Ok(HostRule::Any),
        "self" | "self.alt" => return Ok(HostRule::ToSelf),
        _ => {}
    }
    if host.starts_with('{') {
        return Err("host lists are not supported".into());
    }
    if host.contains('/') {
        if let Ok(net) = host.parse::<ipnet::IpNet>() {
            return Ok(HostRule::Cidr(net.trunc()));
        }
    }
    let host = host.trim_end_matches('/');
    if host.contains('/') {
        return Err("must not include a path".into());
    }
    if let Some(domain) = host.strip_prefix("*.") {
        if domain.contains('*') {
            return Err("wildcards are allowed only as prefixes".into());
        }
        return Ok(HostRule::Subdomains(format!(".{domain}")));
    }
    if host.contains('*') {
        return Err("wildcards are allowed only as subdomains".into());
    }
    url::Host::parse(host)
        .map(HostRule::Literal)
        .map_err(|e| e.to_string())
}

fn parse_port_rule(port: &str, scheme: &str) -> Result<PortRule, String> {
    if port.is_empty() {
        return well_known_port(scheme)
            .map(|p| PortRule::Range(p..p.saturating_add(1)))
            .ok_or_else(|| {
                format!("no port was provided and the scheme {scheme:?} does not have a known default port number")
            });
    }
    if port == "*" {
        return Ok(PortRule::Any);
    }
    if port.starts_with('{') {
        return Err("port lists are not supported".into());
    }
    if let Some((start, end)) = port.split_once("..") {
        let number = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("port range {port:?} contains non-number"))
        };
        return Ok(PortRule::Range(number(start)?..number(end)?));
    }
    let p = port
        .parse::<u16>()
        .map_err(|_| format!("port {port:?} is not a number"))?;
    Ok(PortRule::Range(p..p.saturating_add(1)))
}

impl OutboundPolicy {
    /// Builds a policy from already-expanded entries.
    ///
    /// # Errors
    /// The first entry that does not parse, with the reason.
    pub fn new<'a>(
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<OutboundPolicy, (String, String)> {
        let entries: Vec<&str> = entries.into_iter().collect();
        if entries == ["insecure:allow-all"] {
            return Err((
                entries[0].to_string(),
                "'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic".into(),
            ));
        }
        let allowed = entries
            .into_iter()
            .map(|e| AllowedHost::parse(e).map_err(|reason| (e.to_string(), reason)))
            .collect::<Result<_, _>>()?;
        Ok(OutboundPolicy {
            allowed,
            broken: None,
        })
    }

    /// A policy that refuses everything because its entries, resolved after load, do not
    /// parse; `reason` is logged when a request is refused.
    pub fn broken(reason: String) -> OutboundPolicy {
        OutboundPolicy {
            allowed: Vec::new(),
            broken: Some(reason),
        }
    }

    /// Why the entries are unusable, when they are.
    pub fn broken_reason(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Whether `uri` may be requested. A URI without scheme or host is refused.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let Some(scheme) = uri.scheme_str().map(str::to_ascii_lowercase) else {
            return false;
        };
        let Some(host) = uri.host().and_then(|h| url::Host::parse(h).ok()) else {
            return false;
        };
        self.allowed
            .iter()
            .any(|a| a.allows(&scheme, &host, uri.port_u16()))
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
            (&["*://127.0.0.0/24:3001"], "http://127.0.0.9:3001/", true),
            (&["*://127.0.0.0/24:3001"], "http://127.0.1.9:3001/", false),
            (&["*://127.0.0.0/24:3001"], "http://localhost:3001/", false),
            (&["http://10.1.2.3/8"], "http://10.200.0.1/", true),
            (&["http://localhost:9..3"], "http://localhost:5/", false),
            (&[" http://localhost:80/ "], "http://localhost/", true),
            (&["HTTP://localhost:80"], "http://localhost/", false),
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
            "ftp://host",
            "ws://host",
            "http://host:80/v1",
            "http://[::1]",
            "http://{a,b}",
            "1ttp://host",
        ] {
            assert!(
                AllowedHost::parse(entry).is_err(),
                "{entry} should be rejected"
            );
        }
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn insecure_allow_all_alone_is_rejected_and_a_broken_policy_refuses_all() {
        assert!(OutboundPolicy::new(["insecure:allow-all"]).is_err());
        let broken = OutboundPolicy::broken("bad entry".into());
        assert_eq!(broken.broken_reason(), Some("bad entry"));
        assert!(!broken.allows(&"http://127.0.0.1/".parse().expect("uri")));
    }
}
