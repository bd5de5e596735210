//! The flush component: called by the cron trigger to deliver the write buffer.
//!
//! The export is bound with `wit-bindgen` against the cron plugin's WIT kept in the
//! repository's `wit/` directory: by default the current generation (`spin:cron@3.0.0`,
//! an async export); with the `cron-v2` feature the previous one
//! (`fermyon:spin-cron@2.0.0`, sync). Everything inside uses spin-sdk 5.x's blocking
//! (WASI preview 2) APIs, which both generations' hosts provide.
//!
//! Each tick runs the core's flush and sweep ([`run`]); the cron timestamp is not used, the
//! wall clock is (a late tick must see the real time to honour backoff windows and leases).

mod run;

#[cfg(not(feature = "cron-v2"))]
mod bindings {
    wit_bindgen::generate!({
        world: "spin-cron",
        path: "../../wit/cron@3.0.0",
    });
}

#[cfg(feature = "cron-v2")]
mod bindings {
    wit_bindgen::generate!({
        world: "spin-cron",
        path: "../../wit/cron@2.0.0",
    });
}

struct Flush;

#[cfg(not(feature = "cron-v2"))]
impl bindings::Guest for Flush {
    async fn handle_cron_event(
        metadata: bindings::spin::cron::cron_types::Metadata,
    ) -> Result<(), bindings::spin::cron::cron_types::Error> {
        let _ = metadata;
        run::on_tick().map_err(bindings::spin::cron::cron_types::Error::Other)
    }
}

#[cfg(feature = "cron-v2")]
impl bindings::Guest for Flush {
    fn handle_cron_event(
        metadata: bindings::fermyon::spin_cron::cron_types::Metadata,
    ) -> Result<(), bindings::fermyon::spin_cron::cron_types::Error> {
        let _ = metadata;
        run::on_tick().map_err(bindings::fermyon::spin_cron::cron_types::Error::Other)
    }
}

bindings::export!(Flush with_types_in bindings);
