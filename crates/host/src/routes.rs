//! HTTP routing with Spin's rules.
//!
//! Spin matches with the `routefinder` crate, and so does this module, so precedence is
//! the same by construction: exact segments beat `:name` parameters, which beat a
//! trailing wildcard, compared segment by segment. A route ending in `/...` matches its
//! prefix and everything below it. A later duplicate of a route replaces the earlier
//! one (reported as a warning, as Spin does). Paths under `/.well-known/spin/` are the
//! host's own and never reach a component.

use std::collections::HashMap;

/// Prefix reserved for the runtime's own endpoints (`health`, `info`).
pub const WELL_KNOWN_PREFIX: &str = "/.well-known/spin/";

/// What a route leads to: the index of its `[[trigger.http]]` table.
#[derive(Debug, Clone)]
struct Handler {
    trigger: usize,
    id: String,
    based_route: String,
    raw_route: String,
    wildcard: bool,
}

/// A route that never wins because a later trigger declares the same pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateRoute {
    /// The pattern.
    pub route: String,
    /// The trigger (component id) that loses.
    pub replaced: String,
    /// The trigger (component id) that wins.
    pub effective: String,
}

/// The result of routing one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index of the `[[trigger.http]]` table.
    pub trigger: usize,
    /// The route with the base applied (`spin-matched-route`).
    pub based_route: String,
    /// The route as written (`spin-raw-component-route`).
    pub raw_route: String,
    /// The part of the path matched by a trailing wildcard (`spin-path-info`).
    pub path_info: String,
    /// `:name` captures (`spin-path-match-<name>`).
    pub captures: Vec<(String, String)>,
}

impl RouteMatch {
    /// The raw route without its trailing `/...` (`spin-component-route`).
    pub fn component_route(&self) -> &str {
        self.raw_route
            .strip_suffix("/...")
            .unwrap_or(&self.raw_route)
    }
}

/// The application's routing table.
#[derive(Debug)]
pub struct Router {
    router: routefinder::Router<Handler>,
    listing: Vec<(String, String, bool)>,
}

impl Router {
    /// Builds the table from `(trigger index, component id or label, route)` entries.
    ///
    /// # Errors
    /// `(route, reason)` for a route that is not a valid pattern.
    pub fn build<'a>(
        entries: impl IntoIterator<Item = (usize, &'a str, &'a str)>,
    ) -> Result<(Router, Vec<DuplicateRoute>), (String, String)> {
        let mut ordered: Vec<Handler> = Vec::new();
        let mut duplicates = Vec::new();
        for (trigger, id, raw) in entries {
            let based = sanitize_with_base("/", raw);
            let handler = Handler {
                trigger,
                id: id.to_string(),
                wildcard: based.ends_with("/...") || based.ends_with("/*"),
                based_route: based,
                raw_route: raw.to_string(),
            };
            if let Some(pos) = ordered.iter().position(|h| h.raw_route == raw) {
                let replaced = std::mem::replace(&mut ordered[pos], handler);
                duplicates.push(DuplicateRoute {
                    route: if replaced.based_route.is_empty() {
                        "/".into()
                    } else {
                        replaced.based_route
                    },
                    replaced: replaced.id,
                    effective: id.to_string(),
                });
            } else {
                ordered.push(handler);
            }
        }
        let mut router = routefinder::Router::new();
        let mut listing = Vec::new();
        for handler in ordered {
            let spec = match handler.based_route.strip_suffix("/...") {
                Some(prefix) => format!("{prefix}/*"),
                None => handler.based_route.clone(),
            };
            let shown = handler
                .based_route
                .strip_suffix("/...")
                .or_else(|| handler.based_route.strip_suffix("/*"))
                .unwrap_or(&handler.based_route);
            let shown = shown.to_string();
            listing.push((handler.id.clone(), shown, handler.wildcard));
            let raw = handler.raw_route.clone();
            router
                .add(spec.as_str(), handler)
                .map_err(|e| (raw, e.to_string()))?;
        }
        Ok((Router { router, listing }, duplicates))
    }

    /// `(id, route without wildcard suffix, is wildcard)` for the start-up listing;
    /// the root wildcard shows as an empty route, as in `spin up`'s listing.
    pub fn listing(&self) -> &[(String, String, bool)] {
        &self.listing
    }

    /// Routes a request path (without query).
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let best = self.router.best_match(path)?;
        let handler = best.handler();
        let captures = best.captures();
        let path_info = captures
            .wildcard()
            .map(|s| match (s.is_empty(), path.ends_with('/')) {
                (true, false) => s.to_string(),
                (true, true) => "/".to_string(),
                (false, false) => format!("/{s}"),
                (false, true) => format!("/{s}/"),
            })
            .unwrap_or_default();
        let named: HashMap<&str, &str> = captures.iter().collect();
        let mut captures: Vec<(String, String)> = named
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        captures.sort();
        Some(RouteMatch {
            trigger: handler.trigger,
            based_route: handler.based_route.clone(),
            raw_route: handler.raw_route.clone(),
            path_info,
            captures,
        })
    }
}

fn sanitize_with_base(base: &str, path: &str) -> String {
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    format!(
        "{}{}",
        base.strip_suffix('/').unwrap_or(base),
        path.strip_suffix('/').unwrap_or(&path)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router::build(routes.iter().enumerate().map(|(i, (id, r))| (i, *id, *r)))
            .expect("valid routes")
            .0
    }

    /// (path, expected component, expected path-info)
    fn check(routes: &[(&str, &str)], cases: &[(&str, Option<(&str, &str)>)]) {
        let r = router(routes);
        for (path, want) in cases {
            let got = r.route(path).map(|m| (routes[m.trigger].0, m.path_info));
            assert_eq!(
                got.as_ref().map(|(id, info)| (*id, info.as_str())),
                *want,
                "path {path}"
            );
        }
    }

    #[test]
    fn most_specific_route_wins() {
        check(
            &[
                ("root", "/..."),
                ("api", "/api/..."),
                ("exact", "/api/health"),
                ("param", "/api/items/:id"),
                ("deep", "/api/items/:id/..."),
            ],
            &[
                ("/", Some(("root", "/"))),
                ("/anything/else", Some(("root", "/anything/else"))),
                ("/api", Some(("api", ""))),
                ("/api/", Some(("api", "/"))),
                ("/api/x", Some(("api", "/x"))),
                ("/api/health", Some(("exact", ""))),
                ("/api/health/more", Some(("api", "/health/more"))),
                ("/api/items/7", Some(("param", ""))),
                ("/api/items/7/sub", Some(("deep", "/sub"))),
            ],
        );
    }

    #[test]
    fn exact_routes_do_not_match_below_themselves() {
        check(
            &[("exact", "/healthz")],
            &[
                ("/healthz", Some(("exact", ""))),
                ("/healthz/x", None),
                ("/", None),
            ],
        );
    }

    #[test]
    fn captures_and_headers_values() {
        let r = router(&[("c", "/users/:id/posts/:post"), ("w", "/v1/...")]);
        let m = r.route("/users/42/posts/7").expect("match");
        assert_eq!(
            m.captures,
            vec![
                ("id".to_string(), "42".to_string()),
                ("post".to_string(), "7".to_string())
            ]
        );
        assert_eq!(m.component_route(), "/users/:id/posts/:post");
        let m = r.route("/v1/a/b").expect("match");
        assert_eq!(
            (
                m.based_route.as_str(),
                m.component_route(),
                m.path_info.as_str()
            ),
            ("/v1/...", "/v1", "/a/b")
        );
    }

    #[test]
    fn later_duplicate_wins_and_is_reported() {
        let (r, dups) = Router::build([(0, "first", "/x"), (1, "second", "/x")]).expect("valid");
        assert_eq!(r.route("/x").map(|m| m.trigger), Some(1));
        assert_eq!(
            dups,
            vec![DuplicateRoute {
                route: "/x".into(),
                replaced: "first".into(),
                effective: "second".into()
            }]
        );
    }

    #[test]
    fn listing_shows_wildcards_like_spin() {
        let r = router(&[("gateway", "/..."), ("probe", "/probe/...")]);
        assert_eq!(
            r.listing(),
            &[
                ("gateway".to_string(), String::new(), true),
                ("probe".to_string(), "/probe".to_string(), true)
            ]
        );
    }
}
