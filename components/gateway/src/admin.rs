//! Admin routes (to be written).

use spin_sdk::http::Router;

/// Adds the `/admin/*` routes to the gateway router.
pub fn register(_router: &mut Router) {}
