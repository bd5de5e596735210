//! End-to-end tests over TCP: the real components on the embedded host.
