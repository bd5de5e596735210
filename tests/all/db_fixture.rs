//! The reference DB API fixture with auth on, over TCP (no components needed).

use serde_json::json;

use crate::support::{get, send, Db, DB_SERVICE_TOKEN};

#[tokio::test]
async fn the_db_api_fixture_runs_with_auth_on() {
    let db = Db::start_with_auth().await;
    db.seed("sessions", "alice:web", json!({"cart": 1}), 1)
        .await;
    let url = format!("{}/v1/items/sessions/alice:web", db.url());
    let as_alice = [("authorization", "Bearer demo-token-for-alice")];
    assert_eq!(get(&url).await.status, 401);
    assert_eq!(send("GET", &url, &as_alice, "").await.status, 200);
    // The fixture reads with the service token.
    assert_eq!(
        db.item("sessions", "alice:web").await,
        Some(json!({"cart": 1}))
    );
    db.revoke("alice");
    assert_eq!(send("GET", &url, &as_alice, "").await.status, 401);
    db.restore("alice");
    assert_eq!(send("GET", &url, &as_alice, "").await.status, 200);
    let service = format!("Bearer {DB_SERVICE_TOKEN}");
    let r = send(
        "POST",
        &format!("{}/v1/authorize", db.url()),
        &[
            ("authorization", &service),
            ("content-type", "application/json"),
        ],
        r#"{"ns":"sessions","key":"bob:1","op":"write"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, r#"{"principal":"service"}"#)
    );
}
