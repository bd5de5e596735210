//! The configuration of the request being served, read once.
//!
//! Every knob is a Spin variable, and each lookup is a host call: read one by one, a whole
//! [`CacheConfig`] was 37 of them, about a quarter of a cache hit's instructions on the
//! embedded host. The manifest hands them over in one (`cache_settings`, see
//! `spin_adapters::config`). A request reads them once, here, and its route, its deferred
//! work and its metrics share that reading (an invalid variable is the same error for all of
//! them).
//! [`begin`] forgets the previous reading at the start of each request, so even an instance
//! that served several requests would read each request's variables afresh.

use std::cell::RefCell;
use std::rc::Rc;

use cache_core::config::{CacheConfig, ConfigError};
use spin_adapters::config;

type Reading = Result<Rc<CacheConfig>, ConfigError>;

thread_local! {
    static READING: RefCell<Option<Reading>> = const { RefCell::new(None) };
}

/// Starts a request: the next [`get`] reads the variables.
pub fn begin() {
    READING.with(|r| *r.borrow_mut() = None);
}

/// This request's configuration, read and validated on first use.
pub fn get() -> Reading {
    READING.with(|r| {
        r.borrow_mut()
            .get_or_insert_with(|| config::load().map(Rc::new))
            .clone()
    })
}
