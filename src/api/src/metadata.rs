//! The metadata service guests read (169.254.169.254): the OpenStack tree
//! (`/openstack/<version>/meta_data.json`, `user_data`, `network_data.json`,
//! `vendor_data.json`, `vendor_data2.json`, and from 2013-04-04 `password`, which the guest
//! may POST once, as Nova's takes it, for os-server-password) and the EC2 tree
//! (`/<version>/meta-data/…`, `/<version>/user-data`). It is served on its own listener, without tokens: a guest is
//! known by the address it speaks from, which must be one of its ports (and, when the host's
//! neighbour table knows it, from that port's MAC). Anyone else gets 404.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use driver::metadata as md;

pub fn router(compute: ::compute::Compute) -> Router {
    Router::new().fallback(serve).with_state(compute)
}

/// The MAC the host's neighbour table holds for `ip`, if any.
fn mac_of(ip: &str) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/arp").ok()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 4 && f[0] == ip && f[2] != "0x0").then(|| f[3].to_string())
    })
}

fn text(body: impl Into<Body>, ctype: &'static str) -> Response {
    ([(header::CONTENT_TYPE, ctype)], body.into()).into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 Not Found\n").into_response()
}

/// The most a guest may post as its password (Nova's four chunks of 255).
const MAX_PASSWORD: usize = 4 * 255;

/// The versions whose tree has the `password` file.
fn has_password(version: &str) -> bool {
    version >= "2013-04-04"
}

async fn serve(
    State(compute): State<::compute::Compute>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    body: axum::body::Bytes,
) -> Response {
    let posting = method == Method::POST;
    if method != Method::GET && method != Method::HEAD && !posting {
        return (StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n").into_response();
    }
    let ip = peer.ip().to_canonical().to_string();
    let mac = mac_of(&ip);
    let Some(spec) = compute.metadata_for(&ip, mac.as_deref()).await else {
        tracing::info!(peer = %ip, "metadata request from no known guest");
        return not_found();
    };
    let path = uri.path().trim_matches('/');
    let parts: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    if posting {
        return match parts.as_slice() {
            ["openstack", v, "password"]
                if md::OPENSTACK_VERSIONS.contains(v) && has_password(v) =>
            {
                post_password(&compute, &spec.id, &body).await
            }
            _ => (StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n").into_response(),
        };
    }
    match parts.as_slice() {
        [] => text(
            format!("{}\nopenstack", md::EC2_VERSIONS.join("\n")),
            "text/plain; charset=UTF-8",
        ),
        ["openstack"] => text(
            md::OPENSTACK_VERSIONS.join("\n"),
            "text/plain; charset=UTF-8",
        ),
        ["openstack", v] if md::OPENSTACK_VERSIONS.contains(v) => {
            let mut names: Vec<&str> = md::openstack_files(&spec).keys().copied().collect();
            if has_password(v) {
                names.push("password");
                names.sort_unstable();
            }
            text(names.join("\n"), "text/plain; charset=UTF-8")
        }
        ["openstack", v, "password"] if md::OPENSTACK_VERSIONS.contains(v) && has_password(v) => {
            match compute.guest_password(&spec.id).await {
                Ok(p) => text(p, "text/plain; charset=UTF-8"),
                Err(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error\n",
                )
                    .into_response(),
            }
        }
        ["openstack", v, file] if md::OPENSTACK_VERSIONS.contains(v) => {
            match md::openstack_files(&spec).remove(file) {
                Some(body) if file.ends_with(".json") => text(body, "application/json"),
                Some(body) => text(body, "text/plain"),
                None => not_found(),
            }
        }
        [v] if md::EC2_VERSIONS.contains(v) => {
            let mut l = vec!["meta-data/"];
            if spec.user_data.is_some() {
                l.push("user-data");
            }
            text(l.join("\n"), "text/plain; charset=UTF-8")
        }
        [v, "user-data"] if md::EC2_VERSIONS.contains(v) => match &spec.user_data {
            Some(u) => text(md::user_data_bytes(u), "text/plain"),
            None => not_found(),
        },
        [v, "meta-data", rest @ ..] if md::EC2_VERSIONS.contains(v) => {
            match md::ec2_lookup(&spec, &rest.join("/")) {
                Some(body) => text(body, "text/plain; charset=UTF-8"),
                None => not_found(),
            }
        }
        _ => not_found(),
    }
}

/// A guest's password post: kept once (409 after), at most [`MAX_PASSWORD`] bytes of text.
/// The password is never logged.
async fn post_password(
    compute: &::compute::Compute,
    id: &model::compute::ServerId,
    body: &[u8],
) -> Response {
    if body.len() > MAX_PASSWORD {
        return (
            StatusCode::BAD_REQUEST,
            "400 Bad Request\n\nRequest is too large.\n",
        )
            .into_response();
    }
    let Ok(password) = std::str::from_utf8(body) else {
        return (StatusCode::BAD_REQUEST, "400 Bad Request\n").into_response();
    };
    match compute.post_guest_password(id, password.to_owned()).await {
        Ok(()) => (StatusCode::OK, "").into_response(),
        Err(::compute::Error::Conflict(_)) => {
            (StatusCode::CONFLICT, "409 Conflict\n").into_response()
        }
        Err(e) => {
            tracing::error!(server_id = %id, error = %e, "keeping a guest's password failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error\n",
            )
                .into_response()
        }
    }
}
