//! Every error a client can see is rendered here, in the format of the service it called.
//!
//! Handlers, extractors and middleware return a [`Fault`]: a status and a message. A fault
//! travels to the client as an empty response carrying the `Fault` in its extensions; the
//! per-service layer [`render`] then writes the body in that service's own format:
//!
//! - Compute (Nova): `{"itemNotFound": {"code": 404, "message": "..."}}`, the key named by the
//!   status as Nova's `wsgi.Fault` names it.
//! - Identity (Keystone): `{"error": {"code": 404, "message": "...", "title": "Not Found"}}`.
//! - Image (Glance): an HTML-ish text body, as Glance's webob faults have.
//!
//! The same layer turns any other error response (one produced by the framework itself) into a
//! fault, so no error leaves in a foreign shape.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Which API's error format a response must use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Compute,
    Identity,
    Image,
    /// Ironic: `{"error_message": "<JSON string of faultstring, faultcode, debuginfo>"}`.
    Baremetal,
    /// Neutron: `{"NeutronError": {"type": "NetworkNotFound", "message": "...", "detail": ""}}`.
    Network,
    /// Cinder: Nova's shape, `{"itemNotFound": {"code": 404, "message": "..."}}`; a 413 also
    /// carries `retryAfter`.
    Volume,
    /// onebox's own endpoints (`/healthz`): Keystone's shape, the most common in the field.
    Plain,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub status: StatusCode,
    pub message: String,
    /// Seconds after which the client may try again, sent as `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
    /// The error's type where the service names one (Neutron's `NeutronError.type`).
    pub kind: Option<&'static str>,
    /// Nova answers it with webob's plain page (an unknown URL or method, a body too
    /// large) rather than a fault: HTML, or a small JSON document when the client accepts
    /// JSON.
    pub webob: bool,
}

impl Fault {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            kind: None,
            webob: false,
        }
    }

    /// The same fault with a type name (Neutron's `NetworkNotFound`, …).
    pub fn kind(mut self, kind: &'static str) -> Self {
        self.kind = Some(kind);
        self
    }

    /// The same fault, answered with webob's plain page under compute (see [`Fault::webob`]).
    pub fn webob(mut self) -> Self {
        self.webob = true;
        self
    }

    /// The same fault with a `Retry-After` of `wait`, rounded up to whole seconds (at least 1).
    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        self.retry_after = Some(secs.max(1));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        )
    }

    /// A body past [`crate::extract::MAX_BODY`] (Nova's `max_request_body_size`): webob's
    /// page under compute.
    pub fn too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "Request is too large.").webob()
    }

    /// An unexpected failure. The cause is logged here and never shown to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Unexpected API Error. Please report this at the onebox issue tracker and attach the onebox log if possible.",
        )
    }
}

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = self.status;
        r.extensions_mut().insert(self);
        r
    }
}

impl From<identity::Error> for Fault {
    fn from(e: identity::Error) -> Self {
        use identity::Error as E;
        match e {
            E::Unauthorized(m) => Fault::new(StatusCode::UNAUTHORIZED, m),
            E::Forbidden(m) => Fault::forbidden(m),
            E::NotFound { kind: "token", .. } => Fault::not_found("Failed to validate token"),
            E::NotFound { kind, id } => Fault::not_found(format!("Could not find {kind}: {id}.")),
            E::Conflict(m) => Fault::conflict(m),
            E::BadRequest(m) => Fault::bad_request(m),
            E::Store(s) => Fault::internal(&s),
            E::Hash => Fault::internal(&"password hashing failed"),
            E::Busy { retry_after } => {
                Fault::new(StatusCode::SERVICE_UNAVAILABLE, e_busy()).retry_after(retry_after)
            }
            E::TooManyRequests { retry_after } => {
                Fault::new(StatusCode::TOO_MANY_REQUESTS, e_too_many()).retry_after(retry_after)
            }
        }
    }
}

fn e_busy() -> String {
    identity::Error::Busy {
        retry_after: std::time::Duration::ZERO,
    }
    .to_string()
}

fn e_too_many() -> String {
    identity::Error::TooManyRequests {
        retry_after: std::time::Duration::ZERO,
    }
    .to_string()
}

impl From<compute::Error> for Fault {
    fn from(e: compute::Error) -> Self {
        use compute::Error as E;
        match e {
            E::BadRequest(m) => Fault::bad_request(m),
            E::Forbidden(m) | E::QuotaExceeded(m) => Fault::forbidden(m),
            E::NotFound(m) => Fault::not_found(m),
            E::Conflict(m) => Fault::conflict(m),
            E::NotImplemented(m) => Fault::new(StatusCode::NOT_IMPLEMENTED, m),
            E::Store(s) => Fault::internal(&s),
            E::Task(t) => Fault::internal(&t),
        }
    }
}

/// A storage error that reached the API inside another service's error: a conflict (a
/// constraint the request broke) is the caller's, anything else is internal.
pub(crate) fn storage(conflict: Option<&str>, cause: &dyn std::fmt::Display) -> Fault {
    match conflict {
        Some(m) => Fault::conflict(m.to_owned()),
        None => Fault::internal(cause),
    }
}

/// The message of a body that is not JSON; each service words it its own way.
pub const MALFORMED_BODY: &str = "Malformed request body";

/// Nova's fault key for a status (`nova/api/openstack/wsgi.py`, `Fault._fault_names`).
pub fn compute_fault_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 | 429 => "overLimit",
        415 => "badMediaType",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

/// Marks webob's page: Nova's router answered it, so it carries no microversion headers.
#[derive(Clone, Copy, Debug)]
pub struct WebobPage;

/// Whether `resp` is (or will be rendered as) webob's page.
pub fn is_webob(resp: &Response) -> bool {
    resp.extensions().get::<WebobPage>().is_some()
        || resp.extensions().get::<Fault>().is_some_and(|f| f.webob)
}

/// Marks a response whose error body is final.
#[derive(Clone, Copy, Debug)]
struct Rendered;

/// Renders a fault in the format of `service`.
pub fn render_fault(service: Service, fault: &Fault) -> Response {
    render_fault_for(service, fault, Page::Html)
}

/// The format of webob's page, negotiated on the request's `Accept` as webob does: HTML or
/// JSON, whichever the client accepts with the higher quality (HTML on a tie), and plain
/// text when it accepts neither or sends no `Accept` at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Html,
    Json,
    Plain,
}

impl Page {
    pub fn negotiate(accept: Option<&str>) -> Page {
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
            return Page::Plain;
        };
        // (range, quality) of each entry
        let ranges: Vec<(String, f32)> = accept
            .split(',')
            .filter_map(|entry| {
                let mut parts = entry.split(';');
                let range = parts.next()?.trim().to_ascii_lowercase();
                let q = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                (!range.is_empty()).then_some((range, q))
            })
            .collect();
        // The quality of the most specific range matching `offer`, if any.
        let quality = |offer: &str| {
            let (kind, _) = offer.split_once('/').unwrap_or((offer, ""));
            let mut best: Option<(u8, f32)> = None;
            for (range, q) in &ranges {
                let specificity = if range == offer {
                    2
                } else if range.strip_suffix("/*") == Some(kind) {
                    1
                } else if range == "*/*" {
                    0
                } else {
                    continue;
                };
                if best.is_none_or(|(s, _)| specificity > s) {
                    best = Some((specificity, *q));
                }
            }
            best.map_or(0.0, |(_, q)| q)
        };
        let (html, json) = (quality("text/html"), quality("application/json"));
        if html <= 0.0 && json <= 0.0 {
            Page::Plain
        } else if json > html {
            Page::Json
        } else {
            Page::Html
        }
    }
}

/// Renders a fault in the format of `service`; webob's pages in the format `page`.
fn render_fault_for(service: Service, fault: &Fault, page: Page) -> Response {
    let mut r = if service == Service::Compute && fault.webob {
        let mut r = webob_page(fault, page);
        r.extensions_mut().insert(WebobPage);
        r
    } else {
        render_body(service, fault)
    };
    if let Some(secs) = fault.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r.extensions_mut().insert(Rendered);
    r
}

fn render_body(service: Service, fault: &Fault) -> Response {
    let status = fault.status;
    // A 401 comes from the token check in front of every service (keystonemiddleware in an
    // OpenStack cloud), which answers in Keystone's format whatever the service.
    let service = if status == StatusCode::UNAUTHORIZED {
        Service::Identity
    } else {
        service
    };
    let body = match service {
        Service::Compute => {
            json!({ compute_fault_name(status): { "code": status.as_u16(), "message": fault.message } })
        }
        Service::Volume => {
            let message = if fault.message == MALFORMED_BODY {
                "Malformed request body"
            } else {
                fault.message.as_str()
            };
            let mut inner = json!({ "code": status.as_u16(), "message": message });
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                inner["retryAfter"] = json!("0");
            }
            json!({ compute_fault_name(status): inner })
        }
        Service::Identity | Service::Plain => {
            let message = if fault.message == MALFORMED_BODY {
                "Expecting to find valid JSON in request body. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error."
            } else {
                fault.message.as_str()
            };
            json!({ "error": { "code": status.as_u16(), "message": message, "title": reason(status) } })
        }
        Service::Network => {
            let kind = fault.kind.unwrap_or(match status.as_u16() {
                400 => "HTTPBadRequest",
                403 => "HTTPForbidden",
                404 => "HTTPNotFound",
                405 => "HTTPMethodNotAllowed",
                409 => "HTTPConflict",
                413 => "HTTPRequestEntityTooLarge",
                415 => "HTTPUnsupportedMediaType",
                _ => "HTTPInternalServerError",
            });
            let message = if fault.message == MALFORMED_BODY {
                "Invalid input for operation: Malformed JSON in request body."
            } else {
                fault.message.as_str()
            };
            json!({ "NeutronError": { "type": kind, "message": message, "detail": "" } })
        }
        Service::Baremetal => {
            let inner = json!({
                "faultstring": fault.message,
                "faultcode": if status.is_server_error() { "Server" } else { "Client" },
                "debuginfo": null,
            });
            json!({ "error_message": inner.to_string() })
        }
        Service::Image => {
            // Glance answers errors with webob's plain pages; clients read the status and show
            // the text. onebox sends the same text as a small HTML document.
            let text = format!(
                "<html>\n <head>\n  <title>{code} {reason}</title>\n </head>\n <body>\n  <h1>{code} {reason}</h1>\n  {msg}<br /><br />\n\n\n\n </body>\n</html>",
                code = status.as_u16(),
                reason = reason(status),
                msg = html_escape(&fault.message),
            );
            let mut r = Response::new(Body::from(text));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=UTF-8"),
            );
            return r;
        }
    };
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

/// webob's page for an error no handler made (Nova's router, its body size limit).
fn webob_page(fault: &Fault, page: Page) -> Response {
    let status = fault.status;
    // webob's names, older than the RFC's (413 "Payload Too Large").
    let title = match status.as_u16() {
        413 => "Request Entity Too Large",
        _ => reason(status),
    };
    // Nova's own text, its placeholder unfilled.
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "Request is too large. Larger than max_request_body_size (%s)."
    } else {
        fault.message.as_str()
    };
    let code = format!("{} {title}", status.as_u16());
    let (body, ct) = match page {
        Page::Json => (
            json!({
                "message": format!("{message}<br /><br />\n\n\n"),
                "code": code,
                "title": title,
            })
            .to_string(),
            "application/json",
        ),
        Page::Html => (
            format!(
                "<html>\n <head>\n  <title>{code}</title>\n </head>\n <body>\n  <h1>{code}</h1>\n  {}<br /><br />\n\n\n\n </body>\n</html>",
                html_escape(message)
            ),
            "text/html; charset=UTF-8",
        ),
        Page::Plain => (
            format!("{code}\n\n{message}\n\n   "),
            "text/plain; charset=UTF-8",
        ),
    };
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The per-service layer: gives every error response the body of its service.
pub async fn render(
    service: Service,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let page = Page::negotiate(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok()),
    );
    let mut resp = next.run(req).await;
    // An inner service's layer has already written this error in its own format (Glance's
    // HTML is not JSON, and would otherwise look like a framework error to the outer layer).
    if resp.extensions().get::<Rendered>().is_some() {
        return resp;
    }
    if let Some(fault) = resp.extensions_mut().remove::<Fault>() {
        let mut out = render_fault_for(service, &fault, page);
        carry_headers(&resp, &mut out);
        return out;
    }
    let status = resp.status();
    if (status.is_client_error() || status.is_server_error())
        && resp
            .headers()
            .get(header::CONTENT_TYPE)
            .is_none_or(|ct| !ct.to_str().unwrap_or("").starts_with("application/json"))
    {
        // A framework-made error (e.g. a method the router does not know). Nova's router
        // answers these as unknown URLs.
        let fault = match status {
            StatusCode::METHOD_NOT_ALLOWED if service == Service::Compute => {
                Fault::not_found("The resource could not be found.").webob()
            }
            StatusCode::METHOD_NOT_ALLOWED => {
                Fault::new(status, "The method is not allowed for the requested URL.")
            }
            StatusCode::PAYLOAD_TOO_LARGE => Fault::too_large(),
            s if s.is_server_error() => Fault::internal(&format!("framework error {s}")),
            s => Fault::new(s, reason(s)),
        };
        let mut out = render_fault_for(service, &fault, page);
        carry_headers(&resp, &mut out);
        return out;
    }
    resp
}

/// Keeps headers that describe the exchange (request ids, auth challenge) on a re-rendered
/// fault and drops those that described the old body.
fn carry_headers(from: &Response, to: &mut Response) {
    // webob's page comes from Nova's router, before any microversion is negotiated.
    let webob = to.extensions().get::<WebobPage>().is_some();
    for (k, v) in from.headers() {
        let versioned = k == "openstack-api-version"
            || k == "x-openstack-nova-api-version"
            || k == header::VARY;
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH && !(webob && versioned) {
            to.headers_mut().append(k.clone(), v.clone());
        }
    }
}

/// The fallback of every service router: an unknown URL.
pub async fn unknown_route() -> Fault {
    Fault::not_found("The resource could not be found.")
}

/// The compute router's fallback: an unknown URL, answered with webob's page as Nova's
/// router does.
pub async fn unknown_compute_route() -> Fault {
    Fault::not_found("The resource could not be found.").webob()
}
