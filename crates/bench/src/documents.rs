//! Realistic JSON documents for the storage figure: user profiles (over 2 KB) and sessions.
//!
//! Compression ratios depend entirely on the data, so the documents look like what the cache
//! holds in production: repeated field names, words from a small vocabulary, ISO dates,
//! numbers, and (in sessions) random hex tokens that do not compress.

use serde_json::{json, Value};

use crate::zipf::Rng;

const WORDS: &[&str] = &[
    "the",
    "team",
    "project",
    "design",
    "review",
    "update",
    "release",
    "customer",
    "support",
    "weekly",
    "report",
    "meeting",
    "notes",
    "plan",
    "launch",
    "feature",
    "request",
    "feedback",
    "mobile",
    "web",
    "account",
    "billing",
    "settings",
    "privacy",
    "dashboard",
    "analytics",
    "growth",
    "engineering",
    "product",
    "marketing",
    "sales",
    "north",
    "south",
    "region",
    "quarter",
    "goal",
    "metric",
    "shared",
    "document",
    "comment",
    "mention",
    "draft",
    "final",
];
const CITIES: &[&str] = &[
    "Lisbon", "Berlin", "Austin", "Osaka", "Nairobi", "Toronto", "Lyon",
];

fn words(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| WORDS[(rng.next_u64() % WORDS.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

fn hex(rng: &mut Rng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rng.next_u64() & 0xff))
        .collect()
}

fn date(rng: &mut Rng) -> String {
    format!(
        "2026-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        1 + rng.next_u64() % 12,
        1 + rng.next_u64() % 28,
        rng.next_u64() % 24,
        rng.next_u64() % 60,
        rng.next_u64() % 60
    )
}

/// A user profile of roughly 3 KB of JSON.
pub fn profile(i: u64) -> Value {
    let mut rng = Rng::new(i + 1);
    let activity: Vec<Value> = (0..16)
        .map(|_| {
            let kind = ["comment", "edit", "share", "login"][(rng.next_u64() % 4) as usize];
            json!({
                "type": kind,
                "target": format!("doc-{}", rng.next_u64() % 100_000),
                "at": date(&mut rng),
                "summary": words(&mut rng, 6),
            })
        })
        .collect();
    let city = CITIES[(rng.next_u64() % CITIES.len() as u64) as usize];
    let plan = ["free", "pro", "team"][(rng.next_u64() % 3) as usize];
    let teams: Vec<Value> = (0..4)
        .map(|_| json!({"id": format!("team-{}", rng.next_u64() % 1000), "role": "member"}))
        .collect();
    json!({
        "id": format!("user-{i}"),
        "email": format!("user{i}@example.com"),
        "display_name": format!("User {i}"),
        "avatar_url": format!("https://cdn.example.com/avatars/{}.png", hex(&mut rng, 8)),
        "bio": words(&mut rng, 60),
        "location": { "city": city, "tz": "UTC" },
        "plan": plan,
        "created_at": date(&mut rng),
        "last_seen_at": date(&mut rng),
        "preferences": {
            "theme": "dark", "language": "en", "email_digest": "weekly",
            "notifications": { "mentions": true, "comments": true, "marketing": false },
        },
        "teams": teams,
        "recent_activity": activity,
    })
}

/// A session document of roughly 400 bytes of JSON.
pub fn session(i: u64) -> Value {
    let mut rng = Rng::new(1_000_000 + i);
    json!({
        "session_id": hex(&mut rng, 16),
        "user_id": format!("user-{}", rng.next_u64() % 100_000),
        "csrf": hex(&mut rng, 16),
        "created_at": date(&mut rng),
        "expires_at": date(&mut rng),
        "ip": format!("10.{}.{}.{}", rng.next_u64() % 256, rng.next_u64() % 256, rng.next_u64() % 256),
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
        "scopes": ["read", "write"],
    })
}
