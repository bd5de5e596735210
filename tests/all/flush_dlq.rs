//! Per-item rejections end to end: a rejected write goes to the dead-letter queue without
//! blocking the rest, is visible at `GET /admin/dlq`, and can be replayed or discarded.

use serde_json::{json, Value};

use crate::flush_support::*;

#[tokio::test]
async fn a_rejected_write_is_dead_lettered_and_can_be_replayed_or_discarded() {
    let f = Fixture::new("flush-dlq", &[]).await;
    let t = now_ms();
    f.db.faults(json!({"reject_keys": ["acct/poison", "acct/junk"]}));
    let poison = f.buffer("acct", "poison", json!({"bad": true}), t).await;
    let junk = f.buffer("acct", "junk", json!({"bad": 2}), t + 1).await;
    f.buffer("acct", "fine", json!({"ok": true}), t + 2).await;
    let report = f.admin_flush().await;
    assert_eq!(report["outcome"], "delivered", "{report}");
    assert_eq!(
        (
            report["items"]["applied"].as_u64(),
            report["items"]["dead_lettered"].as_u64()
        ),
        (Some(1), Some(2)),
        "{report}"
    );
    assert_eq!(
        f.db.item("acct", "fine").await,
        Some(json!({"ok": true})),
        "one poison write blocks nothing"
    );
    assert!(f.keys("w:").await.is_empty());

    let dlq = admin(&f.app, "GET", "/admin/dlq").await;
    assert_eq!(dlq.status, 200, "{}", dlq.body);
    let dlq: Value = serde_json::from_str(&dlq.body).expect("JSON");
    let letters = dlq["dead_letters"].as_array().cloned().unwrap_or_default();
    assert_eq!(letters.len(), 2, "{dlq}");
    assert_eq!(letters[0]["stamp"], poison.as_str());
    assert_eq!(
        (letters[0]["ns"].as_str(), letters[0]["key"].as_str()),
        (Some("acct"), Some("poison"))
    );
    assert_eq!(letters[0]["reason"], "rejected", "{dlq}");
    assert_eq!(letters[0]["value"], json!({"bad": true}));
    assert_eq!(f.stats().await["dead_letters"], 2);

    // The DB API is fixed; the poison write is replayed with its original stamp.
    f.db.faults(json!({}));
    let r = admin(&f.app, "POST", &format!("/admin/dlq/{poison}/retry")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(f.keys("w:").await, vec![format!("w:{poison}")]);
    f.tick().await;
    assert_eq!(
        f.db.item("acct", "poison").await,
        Some(json!({"bad": true}))
    );

    // The other is discarded.
    let r = admin(&f.app, "DELETE", &format!("/admin/dlq/{junk}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(f.keys("d:").await.is_empty());
    assert_eq!(f.db.item("acct", "junk").await, None);

    // Unknown and malformed stamps.
    let r = admin(&f.app, "DELETE", &format!("/admin/dlq/{junk}")).await;
    assert_eq!(
        (r.status, error_code(&r.body)),
        (404, "not_found".to_owned())
    );
    let r = admin(&f.app, "POST", "/admin/dlq/not-a-stamp/retry").await;
    assert_eq!(
        (r.status, error_code(&r.body)),
        (400, "bad_stamp".to_owned())
    );
}

fn error_code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_default()
}
