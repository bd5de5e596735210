//! The browser pages and their assets: the demo (`/`), the dashboard (`/dashboard`), the
//! browser client module and the vendored chart library, served by the gateway itself.
//!
//! Why compiled in (`include_bytes!`) rather than a static-file component: the embedded
//! host refuses file mounts (as it refuses every Spin feature it does not implement), a
//! second component would be one more thing to deploy and route on Fermyon Cloud, and the
//! assets are small (about 80 KB, most of it uPlot). The price is a gateway rebuild for an
//! asset change, which the workspace build does anyway. The files live in `assets/` beside
//! this crate and in `client/` at the repository root; the uPlot build is the npm package's
//! own file, pinned in `tests/browser/package.json` and checked against it by the tests.

use cache_core::serve::{Reply, RequestError};
use spin_sdk::http::{Method, Params, Request, Response, Router};

use crate::respond;

/// One asset: its URL path, media type and bytes.
struct Asset {
    path: &'static str,
    media_type: &'static str,
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// An asset compiled in from `file` (relative to this source file).
macro_rules! asset {
    ($path:literal, $media_type:expr, $file:literal) => {
        Asset {
            path: $path,
            media_type: $media_type,
            body: include_bytes!($file),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("/", HTML, "../assets/index.html"),
    asset!("/dashboard", HTML, "../assets/dashboard.html"),
    asset!("/sw.js", JS, "../assets/sw.js"),
    asset!("/assets/cache-sync.js", JS, "../../../client/cache-sync.js"),
    asset!("/assets/demo.js", JS, "../assets/demo.js"),
    asset!("/assets/dashboard.js", JS, "../assets/dashboard.js"),
    asset!("/assets/app.css", CSS, "../assets/app.css"),
    asset!(
        "/assets/uPlot.iife.min.js",
        JS,
        "../assets/vendor/uPlot.iife.min.js"
    ),
    asset!(
        "/assets/uPlot.min.css",
        CSS,
        "../assets/vendor/uPlot.min.css"
    ),
];

/// Pages may load only what the gateway serves.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Adds a route per asset.
pub fn routes(router: &mut Router) {
    for asset in ASSETS {
        router.any(asset.path, move |req: Request, _: Params| {
            Ok::<_, anyhow::Error>(serve(&req, asset))
        });
    }
}

fn serve(req: &Request, asset: &Asset) -> Response {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return respond::error(&RequestError::MethodNotAllowed("GET, HEAD"));
    }
    let mut reply = Reply {
        status: 200,
        headers: vec![
            ("content-type", asset.media_type.to_owned()),
            ("cache-control", "no-cache".to_owned()),
            ("x-content-type-options", "nosniff".to_owned()),
        ],
        body: if *req.method() == Method::Head {
            Vec::new()
        } else {
            asset.body.to_vec()
        },
        ..Reply::default()
    };
    if asset.media_type == HTML {
        reply
            .headers
            .push(("content-security-policy", CSP.to_owned()));
        reply
            .headers
            .push(("referrer-policy", "no-referrer".to_owned()));
    }
    respond::http(reply)
}
