//! Access: the cache serves a caller only what the origin would serve it, and accepts only
//! the writes the origin would accept from it. It never widens access and never stores a
//! credential.
//!
//! # Who decides (`auth_mode`)
//!
//! | mode | reads | writes |
//! |---|---|---|
//! | `origin` (default) | RFC 9111's shared-cache rules ([`crate::serve::cache_control`]): an answer is shared only when the origin marks it shareable, else kept for its caller alone | the DB API's authorization endpoint, asked with the caller's credentials, kept `grant_ttl` |
//! | `grant` | answers kept shared; each caller needs a read grant (a conditional `GET` with its credentials), kept `grant_ttl` | as `origin` |
//! | `jwt` | bearer JWTs verified at the edge; per-namespace rules decide, no origin call | the rules; the principal is `sub` |
//!
//! # The model
//!
//! - Every origin call made for a caller carries the caller's own `Authorization` (none for
//!   an anonymous caller). The cache's `db_api_token` is its own identity, used for batches
//!   only.
//! - Entries have an [`Audience`](crate::entry::Audience): `Anyone` (the origin said
//!   shareable), `Granted` (served only with a read grant: written entries, `grant` mode,
//!   entries from before audiences existed), `Caller` (kept in the caller's own entry,
//!   `c:{ns}#{scope}:{key}`, whose scope is a keyed digest of the credential, see
//!   [`caller`]).
//! - A read looks at the shared entry first (it holds the newest write), then the caller's
//!   own, then asks the origin. A `401`/`403` from the origin is passed through with its
//!   `WWW-Authenticate`, never cached, and only ever removes the refused caller's own entry.
//! - A write is authorized before anything is stored ([`gate::authorize_write`]); its buffer
//!   record keeps the principal (never the credential), and the flush sends it as
//!   `on_behalf_of` so the DB API checks it again when applying: a credential revoked between
//!   the write and the flush leaves the write in the dead-letter queue, not applied.
//! - Decisions are kept for `grant_ttl` ([`grant`]); that is how long a revocation can take.
//!
//! # JWT mode
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

pub mod caller;
pub mod gate;
pub mod grant;
pub mod jwt;
pub mod rules;
