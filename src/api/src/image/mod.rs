//! The Image API (Glance v2), under `/image`.
//!
//! Route table (paths under `/image`; everything below `/v2` needs a token):
//!
//! | method | path | handler |
//! |---|---|---|
//! | GET | `/`, `/versions` | version documents (300 / 200) |
//! | GET, POST | `/v2/images` | [`images::list`], [`images::create`] |
//! | GET, PATCH, DELETE | `/v2/images/{id}` | [`images::show`], [`images::update`], [`images::delete`] |
//! | PUT, GET | `/v2/images/{id}/file` | [`data::upload`], [`data::download`] |
//! | POST | `/v2/images/{id}/actions/{deactivate,reactivate}` | [`images`] |
//! | PUT, DELETE | `/v2/images/{id}/tags/{tag}` | [`images`] |
//! | GET, POST / GET, PUT, DELETE | `/v2/images/{id}/members[/{member}]` | [`members`] |
//! | GET | `/v2/schemas/{image,images,member,members}` | [`schemas`] |
//!
//! Errors use Glance's HTML fault bodies ([`fault::render`] with [`Service::Image`]).
//! `PUT …/file` reads its body as a stream, so the 112 KiB limit of JSON bodies
//! ([`crate::extract::MAX_BODY`]) does not apply to image data; the project's byte quota does.

mod data;
mod images;
mod members;
mod schemas;
mod views;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{any, get, post, put};
use model::image::ImageId;
use serde_json::{Value, json};

use crate::{AppState, Fault, Service, auth, fault};

pub fn router(state: AppState) -> Router {
    let v2 = Router::new()
        .route("/image/v2/images", get(images::list).post(images::create))
        .route(
            "/image/v2/images/{id}",
            get(images::show)
                .patch(images::update)
                .delete(images::delete),
        )
        .route(
            "/image/v2/images/{id}/file",
            put(data::upload).get(data::download),
        )
        .route(
            "/image/v2/images/{id}/actions/deactivate",
            post(images::deactivate),
        )
        .route(
            "/image/v2/images/{id}/actions/reactivate",
            post(images::reactivate),
        )
        .route(
            "/image/v2/images/{id}/tags/{tag}",
            put(images::add_tag).delete(images::remove_tag),
        )
        .route(
            "/image/v2/images/{id}/members",
            get(members::list).post(members::add),
        )
        .route(
            "/image/v2/images/{id}/members/{member}",
            get(members::show)
                .put(members::update)
                .delete(members::remove),
        )
        .route("/image/v2/schemas/image", get(schemas::image))
        .route("/image/v2/schemas/images", get(schemas::images))
        .route("/image/v2/schemas/member", get(schemas::member))
        .route("/image/v2/schemas/members", get(schemas::members))
        .route("/image/v2/{*rest}", any(fault::unknown_route))
        .layer(from_fn_with_state(state.clone(), auth::required));
    Router::new()
        .merge(v2)
        .route("/image", get(versions_300))
        .route("/image/", get(versions_300))
        .route("/image/versions", get(versions_200))
        .route("/image/{*rest}", any(fault::unknown_route))
        .layer(from_fn(|req, next| {
            fault::render(Service::Image, req, next)
        }))
        .with_state(state)
}

impl From<::image::Error> for Fault {
    fn from(e: ::image::Error) -> Self {
        use ::image::Error as E;
        match e {
            E::NotFound(m) => Fault::not_found(m),
            E::Forbidden(m) => Fault::forbidden(m),
            E::BadRequest(m) => Fault::bad_request(m),
            E::Conflict(m) => Fault::conflict(m),
            E::OverLimit(m) => Fault::new(StatusCode::PAYLOAD_TOO_LARGE, m),
            E::RangeNotSatisfiable(_) => Fault::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "Requested range not satisfiable.",
            ),
            E::Interrupted(m) => Fault::bad_request(format!("Image upload interrupted: {m}")),
            E::Store(s) => crate::fault::storage(s.conflict(), &s),
            other @ (E::Io(_) | E::Probe(_)) => Fault::internal(&other),
        }
    }
}

/// An image id from the path. Anything that is not a UUID names no image.
fn image_id(s: &str) -> Result<ImageId, Fault> {
    ImageId::parse(s).ok_or_else(|| Fault::not_found(format!("No image found with ID {s}")))
}

/// Glance's version list: the newest minor first, CURRENT, and the older v2 minors SUPPORTED.
fn versions(base: &str) -> Value {
    let href = format!("{base}/image/v2/");
    let mut out =
        vec![json!({"id": "v2.16", "status": "CURRENT", "links": [{"rel": "self", "href": href}]})];
    for minor in (0..16).rev() {
        out.push(json!({"id": format!("v2.{minor}"), "status": "SUPPORTED", "links": [{"rel": "self", "href": href}]}));
    }
    json!({ "versions": out })
}

async fn versions_300(State(s): State<AppState>, h: HeaderMap) -> (StatusCode, Json<Value>) {
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(versions(&s.base_url(&h))),
    )
}

async fn versions_200(State(s): State<AppState>, h: HeaderMap) -> Json<Value> {
    Json(versions(&s.base_url(&h)))
}
