//! [`CacheConfig`] from Spin variables.
//!
//! Every knob is a Spin variable; a variable the component does not declare, or one declared
//! with an empty value, counts as unset so the core's default applies. Validation and the
//! error naming the offending variable are the core's.

use cache_core::config::{CacheConfig, ConfigError};

/// Reads and validates the configuration from the component's Spin variables.
pub fn load() -> Result<CacheConfig, ConfigError> {
    CacheConfig::from_lookup(lookup)
}

/// One variable; `None` when undefined, unreadable or empty.
#[must_use]
pub fn lookup(name: &str) -> Option<String> {
    spin_sdk::variables::get(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
}
