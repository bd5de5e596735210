//! What an item route reads of a request, and a cache read's request without spin-sdk's
//! conversion.
//!
//! spin-sdk's `Request` is built from the incoming request by reading its body to the end,
//! parsing its URI and hashing every header into a map: about 90k instructions, an eighth
//! of a cache hit, spent before the gateway looks at the request. An item read needs its
//! path, its query and three or four headers, and has no body to read, so [`ReadHead`]
//! takes exactly those from `wasi:http` (the path, and every header in one call) and the
//! read never builds a `Request`. Every other request (writes, admin routes, pages) is
//! converted as before.
//!
//! A read served this way must see the request as the conversion would have shown it:
//! - a header named twice is the last value, as the conversion's map keeps it, and one
//!   whose value is not UTF-8 is absent, as `HeaderValue::as_str` answers;
//! - the path and the query are split at the first `?`, as `http::Uri` splits them. Only a
//!   request whose path, query and authority are made of characters such a URI takes as they
//!   are (letters, digits and `-._~%!$&'()*+,;=:@/?`) comes this way; any other one, which
//!   the conversion might refuse or rewrite, is converted, so it is answered exactly as
//!   before.

use spin_sdk::http::{IncomingRequest, Method, Request};

/// What the item routes read of a request: its head, and the body of a write.
pub trait ItemHttp {
    /// The request method.
    fn method(&self) -> &Method;
    /// The path, without the query.
    fn path(&self) -> &str;
    /// The query, without the `?`; empty when there is none.
    fn query(&self) -> &str;
    /// A header's value (the last one when named twice); `None` when absent or not UTF-8.
    fn header(&self, name: &str) -> Option<&str>;
    /// The body; empty for a read.
    fn body(&self) -> &[u8];
}

impl ItemHttp for Request {
    fn method(&self) -> &Method {
        Request::method(self)
    }
    fn path(&self) -> &str {
        Request::path(self)
    }
    fn query(&self) -> &str {
        Request::query(self)
    }
    fn header(&self, name: &str) -> Option<&str> {
        Request::header(self, name).and_then(|v| v.as_str())
    }
    fn body(&self) -> &[u8] {
        Request::body(self)
    }
}

/// A `GET` of an exact item path (`/v1/{ns}/{key}`), read straight from `wasi:http`.
pub struct ReadHead {
    path_with_query: String,
    /// Where the query starts in `path_with_query` (after the `?`), if there is one.
    query_at: Option<usize>,
    headers: Vec<(String, Vec<u8>)>,
}

impl ReadHead {
    /// The request as a read of an item, or `None` when it is anything else (another
    /// method, another path, or one the conversion might not take as it is).
    #[must_use]
    pub fn of(req: &IncomingRequest) -> Option<ReadHead> {
        if !matches!(req.method(), Method::Get) {
            return None;
        }
        let path_with_query = req.path_with_query()?;
        let authority = req.authority().unwrap_or_default();
        if !path_with_query.starts_with("/v1/")
            || !path_with_query.bytes().all(uri_char)
            || !authority
                .bytes()
                .all(|b| uri_char(b) || b == b'[' || b == b']')
        {
            return None;
        }
        let query_at = path_with_query.find('?').map(|at| at + 1);
        let head = ReadHead {
            path_with_query,
            query_at,
            headers: req.headers().entries(),
        };
        crate::api::item_path(head.path()).is_some().then_some(head)
    }
}

/// A byte an `http::Uri` takes as it is in a path or query.
fn uri_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:@/?".contains(&b)
}

impl ItemHttp for ReadHead {
    fn method(&self) -> &Method {
        &Method::Get
    }
    fn path(&self) -> &str {
        match self.query_at {
            Some(at) => &self.path_with_query[..at - 1],
            None => &self.path_with_query,
        }
    }
    fn query(&self) -> &str {
        self.query_at.map_or("", |at| &self.path_with_query[at..])
    }
    fn header(&self, name: &str) -> Option<&str> {
        let (_, value) = self
            .headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))?;
        std::str::from_utf8(value).ok()
    }
    fn body(&self) -> &[u8] {
        &[]
    }
}
