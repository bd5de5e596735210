//! [`CacheConfig`] from Spin variables.
//!
//! Every knob is a Spin variable. The manifest hands the components all of them in one
//! component variable, `cache_settings` (`cache_core::config::bundle`), so a request reads
//! its configuration in one host call; a variable that one does not hold, or every variable
//! when it is absent or does not come apart, is read on its own. A variable the component
//! does not declare, or one declared with an empty value, counts as unset so the core's
//! default applies. Validation and the error naming the offending variable are the core's.

use cache_core::config::{bundle, CacheConfig, ConfigError};

/// Reads and validates the configuration from the component's Spin variables.
pub fn load() -> Result<CacheConfig, ConfigError> {
    let text = spin_sdk::variables::get(bundle::VARIABLE).ok();
    match text.as_deref().and_then(bundle::parse) {
        Some(values) => CacheConfig::from_lookup(|name| match values.get(name) {
            // An empty or blank value is unset: the core's reader treats it so.
            Some(value) => Some(value.to_owned()),
            None => lookup(name),
        }),
        None => CacheConfig::from_lookup(lookup),
    }
}

/// One variable; `None` when undefined, unreadable or empty.
#[must_use]
pub fn lookup(name: &str) -> Option<String> {
    spin_sdk::variables::get(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
}
