//! The links in Compute responses: `self` and `bookmark` links to a resource, and the `next`
//! link of a page of a listing, all built from the prefix the request was addressed by.

use crate::{AppState, Fault};

/// The URL prefix a request used up to and including its project id, e.g.
/// `/compute/v2.1/4f1…`. Links in responses repeat it, as Nova's do.
#[derive(Clone, Debug)]
pub struct UrlPrefix(pub String);

/// Builds the links of a response: `self` (versioned, as the request was addressed) and
/// `bookmark` (the same without the version segment).
#[derive(Clone, Debug)]
pub struct Links {
    base: String,
    versioned: String,
    bookmark: String,
}

impl Links {
    pub fn new(base: &str, prefix: &str) -> Self {
        let versioned = format!("{base}{prefix}");
        // /compute/v2.1/pid → /compute/pid ; /compute/v2/pid → /compute/pid
        let unversioned = prefix.replacen("/v2.1", "", 1).replacen("/v2", "", 1);
        Self {
            base: base.to_owned(),
            versioned,
            bookmark: format!("{base}{unversioned}"),
        }
    }

    /// The box's base URL (`https://host:port`), without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn href(&self, path: &str) -> String {
        format!("{}/{path}", self.versioned)
    }

    pub fn bookmark(&self, collection: &str, id: &str) -> serde_json::Value {
        serde_json::json!({"rel": "bookmark", "href": format!("{}/{collection}/{id}", self.bookmark)})
    }

    pub fn pair(&self, collection: &str, id: &str) -> serde_json::Value {
        serde_json::json!([
            {"rel": "self", "href": format!("{}/{collection}/{id}", self.versioned)},
            self.bookmark(collection, id),
        ])
    }

    /// The `next` link of a page: the same query with `marker` set to the last item.
    pub fn next(&self, path: &str, query: &[(String, String)], marker: &str) -> serde_json::Value {
        let mut q: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| k != "marker")
            .cloned()
            .collect();
        q.push(("marker".into(), marker.into()));
        q.sort();
        let qs = q
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        serde_json::json!([{"rel": "next", "href": format!("{}/{path}?{qs}", self.versioned)}])
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl axum::extract::FromRequestParts<AppState> for Links {
    type Rejection = Fault;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Fault> {
        let prefix = parts
            .extensions
            .get::<UrlPrefix>()
            .map(|p| p.0.clone())
            .unwrap_or_else(|| "/compute/v2.1".into());
        Ok(Links::new(&state.base_url(&parts.headers), &prefix))
    }
}
