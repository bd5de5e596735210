//! `cache-sync-host`: run a `spin.toml` like `spin up`, without the Spin CLI.
//!
//! The program is [`cache_sync_host::cli::main`]; see there for the flags.

use std::process::ExitCode;

fn main() -> ExitCode {
    cache_sync_host::cli::main()
}
