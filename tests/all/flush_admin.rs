//! The admin routes are closed: a bearer token is required, and without a configured
//! `admin_token` they refuse everyone.

use serde_json::Value;

use crate::flush_support::*;
use crate::support::*;

fn code(r: &Reply) -> String {
    serde_json::from_str::<Value>(&r.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[tokio::test]
async fn admin_routes_need_the_bearer_token() {
    let f = Fixture::new("flush-auth", &[]).await;
    for (method, path) in [
        ("POST", "/admin/flush"),
        ("GET", "/admin/stats"),
        ("GET", "/admin/dlq"),
    ] {
        let r = send(method, &f.app.url(path), &[], "").await;
        assert_eq!(
            (r.status, code(&r)),
            (401, "unauthorized".to_owned()),
            "{method} {path}: {}",
            r.body
        );
        assert!(r.headers.contains_key("www-authenticate"));
        let r = send(
            method,
            &f.app.url(path),
            &[("authorization", "Bearer wrong")],
            "",
        )
        .await;
        assert_eq!(r.status, 401, "{method} {path}");
        assert!(
            admin(&f.app, method, path).await.status == 200,
            "{method} {path}"
        );
    }
    assert_eq!(
        f.db.stats().batch_requests,
        0,
        "an unauthorized flush sends nothing"
    );
}

#[tokio::test]
async fn without_an_admin_token_the_admin_routes_are_disabled() {
    let f = Fixture::new("flush-noadmin", &[("admin_token", "")]).await;
    let r = admin(&f.app, "POST", "/admin/flush").await;
    assert_eq!(
        (r.status, code(&r)),
        (403, "admin_disabled".to_owned()),
        "{}",
        r.body
    );
    let r = send("GET", &f.app.url("/admin/stats"), &[], "").await;
    assert_eq!(r.status, 403);
}
