//! Who may read and write which items, decided at the edge.
//!
//! The cache answers most reads from its own store, so an authorization that only the DB API
//! performs would be skipped by every hit. In the JWT mode the gateway decides instead, without
//! an origin call, in two independent steps:
//!
//! - [`jwt`]: *who is calling*. A bearer JWT is verified against the issuer's published keys
//!   (a JWKS document held in configuration) and the instant passed in; the result is the
//!   caller's principal (the token's `sub`), or an error that is always a `401`.
//! - [`rules`]: *what that caller may do*. Per-namespace rules map a principal (or none) and
//!   an item to allow, `401` (a signed-in caller is needed) or `403`.
//!
//! Both are parsed once from configuration and are pure afterwards: no clock, no I/O.

pub mod jwt;
pub mod rules;
