//! The Compute API (Nova v2.1), under `/compute`.
//!
//! Layout on the wire, as Nova's own paste pipeline lays it out:
//!
//! | path | what |
//! |---|---|
//! | `/compute`, `/compute/` | version list, 200, no token |
//! | `/compute/v2.1`, `/compute/v2.1/` | v2.1 version document, no token, microversion headers |
//! | `/compute/v2`, `/compute/v2/` | legacy v2.0 version document |
//! | `/compute/v2.1/[{project_id}/]…` | the API: token required, microversions |
//! | `/compute/v2/[{project_id}/]…` | the same API in legacy v2.0 mode: always 2.1, no version headers |
//! | any other `/compute/…` | 300 with the version choices |
//!
//! A request to the API passes, in order: the token check (401), microversion negotiation
//! (400/406), the project id in the URL (400 when it is not the token's), then the route table
//! of [`api_routes`] (404 for what does not exist at the requested version).

mod aggregates;
mod availability_zones;
mod block_devices;
mod diagnostics;
mod flavors;
mod floating_ip_pools;
mod hosts;
mod hypervisors;
mod images;
mod instance_actions;
mod interfaces;
mod ips;
mod keypairs;
mod links;
mod migrations;
mod networks;
mod quotas;
mod remote_consoles;
mod security_groups;
mod server_actions;
mod server_groups;
mod server_list;
mod server_metadata;
mod server_password;
mod server_tags;
mod servers;
mod services;
mod usage;
pub mod validate;
mod versions;
pub mod views;
mod volume_attachments;

use axum::Router;
use axum::extract::Request;
use axum::http::Uri;
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tower::ServiceBuilder;

use crate::microversion::{self, MIN_VERSION};
use crate::{AppState, Fault, Service, auth, fault};

pub use links::{Links, UrlPrefix};

/// The request id of the request being served, for instance actions.
pub fn request_id(parts_ext: &axum::http::Extensions) -> String {
    parts_ext
        .get::<crate::request_id::RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4()))
}

/// The API's route table. Paths are relative to `/compute/v2.1[/{project_id}]`.
fn api_routes(state: AppState) -> Router {
    use axum::handler::Handler;
    use axum::routing::post;
    // The GET routes that refuse every query parameter from 2.102.
    let strict = || from_fn(validate::no_query_from_2_102);
    Router::new()
        .route("/", get(versions::v21_doc))
        .route("/flavors", get(flavors::list).post(flavors::create))
        .route("/flavors/detail", get(flavors::detail))
        .route(
            "/flavors/{id}",
            get(flavors::show.layer(strict()))
                .put(flavors::update)
                .delete(flavors::delete),
        )
        .route(
            "/flavors/{id}/os-extra_specs",
            get(flavors::list_specs.layer(strict())).post(flavors::create_specs),
        )
        .route(
            "/flavors/{id}/os-extra_specs/{key}",
            get(flavors::show_spec.layer(strict()))
                .put(flavors::update_spec)
                .delete(flavors::delete_spec),
        )
        .route(
            "/flavors/{id}/os-flavor-access",
            get(flavors::access.layer(strict())),
        )
        .route("/flavors/{id}/action", post(flavors::action))
        .route("/os-keypairs", get(keypairs::list).post(keypairs::create))
        .route(
            "/os-keypairs/{name}",
            get(keypairs::show).delete(keypairs::delete),
        )
        .route("/servers", get(server_list::list).post(servers::create))
        .route("/servers/detail", get(server_list::detail))
        .route(
            "/servers/{id}",
            get(servers::show.layer(strict()))
                .put(servers::update)
                .delete(servers::delete),
        )
        .route(
            "/servers/{id}/metadata",
            get(server_metadata::list.layer(strict()))
                .post(server_metadata::merge)
                .put(server_metadata::replace),
        )
        .route(
            "/servers/{id}/metadata/{key}",
            get(server_metadata::show.layer(strict()))
                .put(server_metadata::set)
                .delete(server_metadata::delete),
        )
        .route(
            "/servers/{id}/tags",
            get(server_tags::list)
                .put(server_tags::replace)
                .delete(server_tags::clear),
        )
        .route(
            "/servers/{id}/tags/{tag}",
            get(server_tags::check)
                .put(server_tags::add)
                .delete(server_tags::delete),
        )
        .route("/servers/{id}/action", post(server_actions::action))
        .route(
            "/servers/{id}/remote-consoles",
            post(remote_consoles::create),
        )
        .route(
            "/os-console-auth-tokens/{token}",
            get(remote_consoles::show_token),
        )
        .route(
            "/servers/{id}/os-instance-actions",
            get(instance_actions::list),
        )
        .route(
            "/servers/{id}/os-instance-actions/{request_id}",
            get(instance_actions::show.layer(strict())),
        )
        .route(
            "/os-networks",
            get(networks::list).post(versions::network_write),
        )
        .route(
            "/os-networks/{id}",
            get(networks::show)
                .post(versions::network_post)
                .delete(versions::network_write),
        )
        .route("/os-networks/{id}/action", post(versions::network_action))
        .route("/os-fixed-ips/{id}/action", post(versions::fixed_ip_action))
        .route("/servers/{id}/ips", get(ips::list.layer(strict())))
        .route(
            "/servers/{id}/os-interface",
            get(interfaces::list.layer(strict())).post(interfaces::create),
        )
        .route(
            "/servers/{id}/os-interface/{port}",
            get(interfaces::show.layer(strict())).delete(interfaces::delete),
        )
        .route(
            "/servers/{id}/os-volume_attachments",
            get(volume_attachments::list).post(volume_attachments::create),
        )
        .route(
            "/servers/{id}/os-volume_attachments/{volume}",
            get(volume_attachments::show).delete(volume_attachments::delete),
        )
        .route(
            "/servers/{id}/ips/{network}",
            get(ips::network.layer(strict())),
        )
        .route(
            "/os-quota-sets/{project}",
            get(quotas::show).put(quotas::update).delete(quotas::delete),
        )
        .route("/os-quota-sets/{project}/defaults", get(quotas::defaults))
        .route("/os-quota-sets/{project}/detail", get(quotas::detail))
        .route("/limits", get(quotas::limits))
        .route(
            "/os-availability-zone",
            get(availability_zones::list.layer(strict())),
        )
        .route(
            "/os-availability-zone/detail",
            get(availability_zones::detail.layer(strict())),
        )
        .route(
            "/os-server-groups",
            get(server_groups::list).post(server_groups::create),
        )
        .route(
            "/os-server-groups/{id}",
            get(server_groups::show.layer(strict())).delete(server_groups::delete),
        )
        .route("/os-hosts", get(hosts::list))
        .route("/os-hosts/{id}", get(hosts::show))
        .route("/os-hypervisors", get(hypervisors::list))
        .route("/os-hypervisors/detail", get(hypervisors::detail_list))
        .route("/os-hypervisors/statistics", get(hypervisors::statistics))
        .route("/os-hypervisors/{id}", get(hypervisors::show))
        .route("/os-hypervisors/{id}/uptime", get(hypervisors::uptime))
        .route("/os-hypervisors/{id}/search", get(hypervisors::search))
        .route("/os-hypervisors/{id}/servers", get(hypervisors::servers_of))
        .route("/os-services", get(services::list))
        .route(
            "/os-services/{id}",
            axum::routing::put(services::update).delete(services::delete),
        )
        .route("/os-simple-tenant-usage", get(usage::list))
        .route("/os-simple-tenant-usage/{tenant}", get(usage::show))
        .route(
            "/os-aggregates",
            get(aggregates::list.layer(strict())).post(aggregates::create),
        )
        .route(
            "/os-aggregates/{id}",
            get(aggregates::show.layer(strict()))
                .put(aggregates::update)
                .delete(aggregates::delete),
        )
        .route("/os-aggregates/{id}/action", post(aggregates::action))
        .route(
            "/os-quota-class-sets/{id}",
            get(quotas::class_show.layer(strict())).put(quotas::class_update),
        )
        .route(
            "/servers/{id}/os-server-password",
            get(server_password::show.layer(strict())).delete(server_password::clear),
        )
        .route("/os-floating-ip-pools", get(floating_ip_pools::list))
        .route("/os-migrations", get(migrations::list))
        .route(
            "/servers/{id}/diagnostics",
            get(diagnostics::show.layer(strict())),
        )
        .route(
            "/servers/{id}/migrations",
            get(migrations::server_list.layer(strict())),
        )
        .route(
            "/servers/{id}/migrations/{migration}",
            get(migrations::server_show.layer(strict())),
        )
        .route(
            "/servers/{id}/os-security-groups",
            get(security_groups::server_groups.layer(strict())),
        )
        .route(
            "/os-security-groups",
            get(security_groups::list).post(security_groups::create),
        )
        .route(
            "/os-security-groups/{id}",
            get(security_groups::show).delete(security_groups::delete),
        )
        .route(
            "/os-security-group-rules",
            axum::routing::post(security_groups::create_rule),
        )
        .route(
            "/os-security-group-rules/{id}",
            axum::routing::delete(security_groups::delete_rule),
        )
        .route("/images", get(images::list))
        .route("/images/detail", get(images::detail_list))
        .route("/images/{id}", get(images::show).delete(images::delete))
        .route(
            "/images/{id}/metadata",
            get(images::metadata_list)
                .post(images::metadata_merge)
                .put(images::metadata_replace),
        )
        .route(
            "/images/{id}/metadata/{key}",
            get(images::metadata_show)
                .put(images::metadata_set)
                .delete(images::metadata_delete),
        )
        .merge(volumes_boot_routes())
        .route("/{gone}", axum::routing::any(versions::gone))
        .route("/{gone}/{*rest}", axum::routing::any(versions::gone))
        .fallback(fault::unknown_compute_route)
        .with_state(state)
}

/// `/os-volumes_boot`: Nova's old name for `/servers` (list, detail, create, show, update,
/// delete and actions), removed in 2.103.
fn volumes_boot_routes() -> Router<AppState> {
    use axum::handler::Handler;
    use axum::routing::post;
    Router::new()
        .route(
            "/os-volumes_boot",
            get(server_list::list).post(servers::create),
        )
        .route("/os-volumes_boot/detail", get(server_list::detail))
        .route(
            "/os-volumes_boot/{id}",
            get(servers::show.layer(from_fn(validate::no_query_from_2_102)))
                .put(servers::update)
                .delete(servers::delete),
        )
        .route("/os-volumes_boot/{id}/action", post(server_actions::action))
        .route_layer(from_fn(until_2_103))
}

/// 404 from 2.103, as for any route Nova no longer has at the requested version.
async fn until_2_103(ver: microversion::ApiVersion, req: Request, next: Next) -> Response {
    if ver.at_least(103) {
        return Fault::not_found("The resource could not be found.").into_response();
    }
    next.run(req).await
}

pub fn router(state: AppState) -> Router {
    let v21 = ServiceBuilder::new()
        .layer(from_fn_with_state(state.clone(), auth::required))
        .layer(from_fn(microversion::layer))
        .layer(from_fn(|req, next| {
            project_scope("/compute/v2.1", req, next)
        }))
        .service(api_routes(state.clone()));
    let legacy = ServiceBuilder::new()
        .layer(from_fn_with_state(state.clone(), auth::required))
        .layer(from_fn(legacy_v2))
        .layer(from_fn(|req, next| project_scope("/compute/v2", req, next)))
        .service(api_routes(state.clone()));
    let v21_doc = get(versions::v21_doc).layer(from_fn(microversion::layer));
    Router::new()
        .route("/compute", get(versions::list))
        .route("/compute/", get(versions::list))
        .route("/compute/v2.1", v21_doc.clone())
        .route("/compute/v2.1/", v21_doc)
        .route("/compute/v2", get(versions::v20_doc))
        .route("/compute/v2/", get(versions::v20_doc))
        .route_service("/compute/v2.1/{*rest}", v21)
        .route_service("/compute/v2/{*rest}", legacy)
        .route("/compute/{*rest}", any(versions::choices))
        .layer(from_fn(|req, next| {
            fault::render(Service::Compute, req, next)
        }))
        .with_state(state)
}

/// Strips an optional project id from the path after `prefix`, refusing one that is not the
/// token's, and hands the rest of the path to the route table.
async fn project_scope(prefix: &'static str, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let rest = path.strip_prefix(prefix).unwrap_or("");
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let mut used_prefix = prefix.to_owned();
    let inner_path = if is_project_id(first) {
        let token_project = req
            .extensions()
            .get::<identity::Context>()
            .and_then(|c| c.project_id.clone());
        if token_project.as_ref().map(|p| p.as_str()) != Some(first) {
            let theirs = token_project.map(|p| p.to_string()).unwrap_or_default();
            return Fault::bad_request(format!(
                "Malformed request URL: URL's project_id '{first}' doesn't match Context's project_id '{theirs}'"
            ))
            .into_response();
        }
        used_prefix = format!("{prefix}/{first}");
        format!("/{tail}")
    } else {
        format!("/{rest}")
    };
    let pq = match req.uri().query() {
        Some(q) => format!("{inner_path}?{q}"),
        None => inner_path,
    };
    match pq.parse::<Uri>() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return Fault::not_found("The resource could not be found.").into_response(),
    }
    req.extensions_mut().insert(UrlPrefix(used_prefix));
    next.run(req).await
}

/// Nova's rule for a project id in a URL: `[0-9a-f-]+`.
fn is_project_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase() || b == b'-')
}

/// The legacy v2.0 mode: microversion headers are ignored and none are sent back.
async fn legacy_v2(mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(MIN_VERSION);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::is_project_id;

    #[test]
    fn project_ids_in_urls() {
        assert!(is_project_id("4f1a2b3c4d5e6f708192a3b4c5d6e7f8"));
        assert!(is_project_id("abc-123"));
        assert!(!is_project_id("servers"));
        assert!(!is_project_id("os-keypairs"));
        assert!(!is_project_id("ABC"));
        assert!(!is_project_id(""));
    }
}
