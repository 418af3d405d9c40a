//! Token checks in front of the services.
//!
//! `X-Auth-Token` is validated against the identity service; the caller's
//! [`identity::Context`] and the token's [`identity::TokenInfo`] go into the request's
//! extensions for handlers and policy. A 401 carries `WWW-Authenticate: Keystone uri=...`, as
//! keystonemiddleware sends it, so clients know where to authenticate.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{AppState, Fault};

/// Validates the token when one is sent; routes that need a caller use the `Caller` extractor,
/// so version documents and token issue work without one.
pub async fn optional(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(token) = token_of(&req) {
        match state.identity.validate(&token).await {
            Ok(Some(info)) => {
                req.extensions_mut().insert(info.context());
                req.extensions_mut().insert(info);
            }
            // An invalid token is as good as none here: routes that need a caller refuse it.
            Ok(None) => {}
            Err(e) => return Fault::from(e).into_response(),
        }
    }
    // Keystone names its own versioned endpoint in the challenge.
    let uri = format!("{}/identity/v3", state.base_url(req.headers()));
    let mut resp = next.run(req).await;
    if resp.status() == axum::http::StatusCode::UNAUTHORIZED {
        add_challenge(&mut resp, &uri);
    }
    // Identity answers depend on the caller's token.
    resp.headers_mut().append(
        axum::http::header::VARY,
        HeaderValue::from_static("X-Auth-Token"),
    );
    resp
}

/// Refuses the request with 401 unless it carries a valid token.
pub async fn required(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(token) = token_of(&req) else {
        return unauthorized(&state, &req);
    };
    match state.identity.validate(&token).await {
        Ok(Some(info)) => {
            req.extensions_mut().insert(info.context());
            req.extensions_mut().insert(info);
            next.run(req).await
        }
        Ok(None) => unauthorized(&state, &req),
        Err(e) => Fault::from(e).into_response(),
    }
}

fn token_of(req: &Request) -> Option<String> {
    req.headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// A 401 naming the identity endpoint of the catalog, as keystonemiddleware sends it.
fn unauthorized(state: &AppState, req: &Request) -> Response {
    let mut resp = Fault::unauthorized().into_response();
    add_challenge(
        &mut resp,
        &format!("{}/identity", state.base_url(req.headers())),
    );
    resp
}

fn add_challenge(resp: &mut Response, uri: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("Keystone uri=\"{uri}\"")) {
        resp.headers_mut().insert("www-authenticate", v);
    }
}
