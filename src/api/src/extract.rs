//! Extractors whose every rejection is a [`Fault`], so malformed requests get the service's
//! own fault body like any other error.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use serde::de::DeserializeOwned;

use crate::fault::Fault;

/// The largest request body onebox reads (Nova's and Keystone's `max_request_body_size`).
pub const MAX_BODY: usize = 114_688;

/// A JSON request body, validated by `T`'s `Deserialize` (whose types use
/// `deny_unknown_fields`, so an unknown field is refused as Nova's schemas refuse it).
pub struct JsonBody<T>(pub T);

/// A JSON body read as a free-form value, for handlers that validate by hand.
pub type AnyJson = JsonBody<serde_json::Value>;

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Fault;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Fault> {
        check_content_type(&req)?;
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| Fault::too_large())?;
        parse(&bytes).map(JsonBody)
    }
}

/// Content types Nova accepts for a body; a missing one is taken as JSON.
fn check_content_type(req: &Request) -> Result<(), Fault> {
    let Some(ct) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    match essence {
        "" | "application/json" | "application/vnd.openstack.compute+json" | "text/plain" => Ok(()),
        _ => Err(Fault::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Content-Type",
        )),
    }
}

/// Parses a body: an empty one is JSON `null` (the schema then decides), bad syntax is
/// "Malformed request body", and a shape the type refuses names the offending field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Fault> {
    let value: serde_json::Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(bytes)
            .map_err(|_| Fault::bad_request(crate::fault::MALFORMED_BODY))?
    };
    serde_json::from_value(value)
        .map_err(|e| Fault::bad_request(format!("Invalid input for field/attribute: {e}")))
}

/// The authenticated caller. Present on every route behind the auth layer.
pub struct Caller(pub identity::Context);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Fault;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Fault> {
        parts
            .extensions
            .get::<identity::Context>()
            .cloned()
            .map(Caller)
            .ok_or_else(Fault::unauthorized)
    }
}

/// The query string as ordered (name, value) pairs, repeated names kept.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = Fault;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Fault> {
        let q = parts.uri.query().unwrap_or("");
        Ok(QueryPairs(
            form_pairs(q)
                .into_iter()
                .filter(|(k, _)| !k.is_empty())
                .collect(),
        ))
    }
}

impl QueryPairs {
    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits and percent-decodes an `application/x-www-form-urlencoded` query.
fn form_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Path parameters of a route inside a service whose outer route captured the rest of the
/// path: like axum's `Path`, but the outer capture (`rest`) is ignored.
pub struct Path<T>(pub T);

pub trait FromParams: Sized {
    fn from_params(values: Vec<String>) -> Option<Self>;
}

impl FromParams for String {
    fn from_params(mut v: Vec<String>) -> Option<Self> {
        (v.len() == 1).then(|| v.remove(0))
    }
}

impl FromParams for (String, String) {
    fn from_params(v: Vec<String>) -> Option<Self> {
        let mut it = v.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(a), Some(b), None) => Some((a, b)),
            _ => None,
        }
    }
}

impl<S: Send + Sync, T: FromParams> FromRequestParts<S> for Path<T> {
    type Rejection = Fault;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Fault> {
        let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| Fault::not_found("The resource could not be found."))?;
        let values: Vec<String> = raw
            .iter()
            .filter(|(k, _)| *k != "rest")
            .map(|(_, v)| v.to_owned())
            .collect();
        T::from_params(values)
            .map(Path)
            .ok_or_else(|| Fault::internal(&"route parameters do not match the handler"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        assert_eq!(
            form_pairs("name=a%20b&x=1+2&flag&bad=%zz&end=%4"),
            vec![
                ("name".into(), "a b".into()),
                ("x".into(), "1 2".into()),
                ("flag".into(), "".into()),
                ("bad".into(), "%zz".into()),
                ("end".into(), "%4".into()),
            ]
        );
    }
}

/// The address of the client's end of the connection, when the request came over one (the
/// listener puts it in the request as [`axum::extract::ConnectInfo`]). Forwarding headers
/// are not believed: any client can write them.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl ClientAddr {
    pub fn of(extensions: &axum::http::Extensions) -> Self {
        Self(
            extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.extensions))
    }
}
