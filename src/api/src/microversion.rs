//! Compute API microversions: parsing the request headers, the negotiated version, and the
//! headers every v2.1 response carries.
//!
//! A request names its version with `OpenStack-API-Version: compute 2.N` or the older
//! `X-OpenStack-Nova-API-Version: 2.N`; the first wins when both are present, neither means
//! 2.1, and `latest` means the maximum. A malformed version is 400 without version headers;
//! one outside the range is 406 and, as Nova answers it, names the version asked for in both
//! headers. Every other v2.1 response, faults included, echoes the version in both headers and
//! adds both to `Vary`.

use std::fmt;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::fault::Fault;

/// A compute API version, compared numerically: 2.9 < 2.10 < 2.100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: u32,
    pub minor: u32,
}

impl ApiVersion {
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// Is this request at `2.minor` or later?
    pub fn at_least(self, minor: u32) -> bool {
        self >= ApiVersion::new(2, minor)
    }

    /// Parses `MAJOR.MINOR` as Nova does: `^([1-9]\d*)\.([1-9]\d*|0)$`.
    pub fn parse(s: &str) -> Option<Self> {
        let (maj, min) = s.split_once('.')?;
        let valid = |p: &str, zero_ok: bool| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (!p.starts_with('0') || (zero_ok && p == "0"))
        };
        if !valid(maj, false) || !valid(min, true) {
            return None;
        }
        Some(Self::new(maj.parse().ok()?, min.parse().ok()?))
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The lowest version the v2.1 endpoint serves.
pub const MIN_VERSION: ApiVersion = ApiVersion::new(2, 1);

/// The highest version onebox fully honours: every operation it serves behaves as Nova's does
/// at every version up to this one. It grows only when the API does.
pub const MAX_VERSION: ApiVersion = ApiVersion::new(2, 104);

const LEGACY_HEADER: &str = "x-openstack-nova-api-version";
const HEADER: &str = "openstack-api-version";

/// The version a request asks for, or the fault that refuses it.
pub fn negotiate(headers: &HeaderMap) -> Result<ApiVersion, Fault> {
    let Some(requested) = requested_text(headers) else {
        return Ok(MIN_VERSION);
    };
    if requested.eq_ignore_ascii_case("latest") {
        return Ok(MAX_VERSION);
    }
    let v = ApiVersion::parse(&requested).ok_or_else(|| {
        Fault::bad_request(format!(
            "API Version String {requested} is of invalid format. Must be of format MajorNum.MinorNum."
        ))
    })?;
    if v < MIN_VERSION || v > MAX_VERSION {
        return Err(Fault::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "Version {v} is not supported by the API. Minimum is {MIN_VERSION} and maximum is {MAX_VERSION}."
            ),
        ));
    }
    Ok(v)
}

/// The version the headers name, as text (the new header's compute entry first).
fn requested_text(headers: &HeaderMap) -> Option<String> {
    match compute_entry(headers) {
        Some(v) => Some(v),
        None => headers
            .get(LEGACY_HEADER)
            .map(|v| v.to_str().unwrap_or("").trim().to_owned()),
    }
}

/// The well-formed version the headers name, whether served or not.
fn requested(headers: &HeaderMap) -> Option<ApiVersion> {
    requested_text(headers).and_then(|t| ApiVersion::parse(&t))
}

/// The `compute` entry of `OpenStack-API-Version` (`compute 2.1, volume 3.0` → `2.1`).
fn compute_entry(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|entry| {
            let mut parts = entry.split_whitespace();
            let service = parts.next()?;
            let version = parts.next()?;
            service
                .eq_ignore_ascii_case("compute")
                .then(|| version.to_owned())
        })
}

/// The v2.1 layer: negotiates, stores the version for handlers, and stamps the response.
pub async fn layer(mut req: Request, next: Next) -> Response {
    let version = match negotiate(req.headers()) {
        Ok(v) => v,
        Err(f) => {
            let refused = f.status == StatusCode::NOT_ACCEPTABLE;
            let mut resp = f.into_response();
            // A well-formed version out of range: Nova echoes it.
            if let Some(v) = requested(req.headers()).filter(|_| refused) {
                stamp(resp.headers_mut(), v);
            }
            return resp;
        }
    };
    req.extensions_mut().insert(version);
    let mut resp = next.run(req).await;
    if !crate::fault::is_webob(&resp) {
        stamp(resp.headers_mut(), version);
    }
    resp
}

pub fn stamp(h: &mut HeaderMap, v: ApiVersion) {
    if let Ok(val) = HeaderValue::from_str(&format!("compute {v}")) {
        h.insert(HEADER, val);
    }
    if let Ok(val) = HeaderValue::from_str(&v.to_string()) {
        h.insert(LEGACY_HEADER, val);
    }
    h.append(
        header::VARY,
        HeaderValue::from_static("OpenStack-API-Version"),
    );
    h.append(
        header::VARY,
        HeaderValue::from_static("X-OpenStack-Nova-API-Version"),
    );
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ApiVersion {
    type Rejection = Fault;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Fault> {
        Ok(parts
            .extensions
            .get::<ApiVersion>()
            .copied()
            .unwrap_or(MIN_VERSION))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn parsing_follows_novas_pattern() {
        assert_eq!(ApiVersion::parse("2.1"), Some(ApiVersion::new(2, 1)));
        assert_eq!(ApiVersion::parse("2.0"), Some(ApiVersion::new(2, 0)));
        assert_eq!(ApiVersion::parse("2.100"), Some(ApiVersion::new(2, 100)));
        for bad in [
            "2", "2.", ".1", "2.01", "02.1", "2.a", "a.b", "2.1.1", " 2.1", "-2.1", "",
        ] {
            assert_eq!(ApiVersion::parse(bad), None, "{bad}");
        }
        assert!(ApiVersion::new(2, 9) < ApiVersion::new(2, 10));
        assert!(ApiVersion::new(2, 10) < ApiVersion::new(2, 100));
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(&h(&[])), Ok(MIN_VERSION));
        assert_eq!(negotiate(&h(&[(LEGACY_HEADER, "latest")])), Ok(MAX_VERSION));
        assert_eq!(
            negotiate(&h(&[(HEADER, "volume 3.0, compute latest")])),
            Ok(MAX_VERSION)
        );
        // The new header wins over the legacy one.
        assert_eq!(
            negotiate(&h(&[(HEADER, "compute 2.1"), (LEGACY_HEADER, "2.a")])),
            Ok(MIN_VERSION)
        );
        // A header without a compute entry is as good as none.
        assert_eq!(negotiate(&h(&[(HEADER, "volume 3.0")])), Ok(MIN_VERSION));
        let e = negotiate(&h(&[(LEGACY_HEADER, "2.a")])).expect_err("bad");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = negotiate(&h(&[(LEGACY_HEADER, "3.0")])).expect_err("range");
        assert_eq!(e.status, StatusCode::NOT_ACCEPTABLE);
        let e = negotiate(&h(&[(LEGACY_HEADER, "2.0")])).expect_err("below");
        assert_eq!(e.status, StatusCode::NOT_ACCEPTABLE);
    }
}
