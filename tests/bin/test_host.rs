//! The embedded host's command line under a name of the test package, so that cargo builds
//! it with the tests (same features, no second build) and hands its path to them as
//! `CARGO_BIN_EXE_test-host`. The tests that kill a host process run this.

use std::process::ExitCode;

fn main() -> ExitCode {
    cache_sync_host::cli::main()
}
