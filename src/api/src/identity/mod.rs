//! Identity v3, wire-compatible with the Keystone subset that clients use: version documents,
//! tokens, catalog, and the admin resources behind `openstack project|user|role|domain`.
//!
//! Route table (paths under `/identity`):
//!
//! | method | path | handler |
//! |---|---|---|
//! | GET | `/`, `/v3`, `/v3/` | [`versions`] |
//! | POST, GET, HEAD, DELETE | `/v3/auth/tokens` | [`tokens`] |
//! | GET | `/v3/auth/catalog`, `/v3/auth/projects`, `/v3/auth/domains`, `/v3/auth/system` | [`tokens`] |
//! | GET | `/v3/services[/{id}]`, `/v3/endpoints[/{id}]`, `/v3/regions[/{id}]` | [`catalog`] |
//! | GET, POST / GET, PATCH, DELETE | `/v3/domains[/{id}]` | [`domains`] |
//! | GET, POST / GET, PATCH, DELETE | `/v3/projects[/{id}]` | [`projects`] |
//! | GET, POST / GET, PATCH, DELETE | `/v3/users[/{id}]`, `POST /v3/users/{id}/password`, `GET /v3/users/{id}/projects` | [`users`] |
//! | GET, POST / GET, DELETE | `/v3/roles[/{id}]` | [`roles`] |
//! | GET, PUT, HEAD, DELETE | `/v3/{projects,domains}/{t}/users/{u}/roles[/{r}]` | [`roles`] |
//! | GET | `/v3/role_assignments` | [`roles`] |

pub mod catalog;
mod domains;
mod projects;
mod roles;
mod tokens;
mod users;
mod versions;
mod views;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;

use crate::{AppState, Service, auth, fault};

pub fn router(state: AppState) -> Router {
    let v3 = Router::new()
        .route("/identity/v3", get(versions::v3))
        .route("/identity/v3/", get(versions::v3))
        .route(
            "/identity/v3/auth/tokens",
            get(tokens::validate)
                .head(tokens::check)
                .delete(tokens::revoke)
                .merge(
                    axum::routing::post(tokens::issue)
                        .layer(from_fn_with_state(state.clone(), tokens::rate_limit)),
                ),
        )
        .route("/identity/v3/auth/catalog", get(tokens::auth_catalog))
        .route("/identity/v3/auth/projects", get(tokens::projects))
        .route("/identity/v3/auth/domains", get(tokens::domains))
        .route("/identity/v3/auth/system", get(tokens::system))
        .route("/identity/v3/services", get(catalog::list_services))
        .route("/identity/v3/services/{id}", get(catalog::show_service))
        .route("/identity/v3/endpoints", get(catalog::list_endpoints))
        .route("/identity/v3/endpoints/{id}", get(catalog::show_endpoint))
        .route("/identity/v3/regions", get(catalog::list_regions))
        .route("/identity/v3/regions/{id}", get(catalog::show_region))
        .route("/identity/v3/domains", get(domains::list))
        .route("/identity/v3/domains/{id}", get(domains::show))
        .route(
            "/identity/v3/domains/{domain_id}/users/{user_id}/roles",
            get(roles::list_domain_grants),
        )
        .route(
            "/identity/v3/domains/{domain_id}/users/{user_id}/roles/{role_id}",
            get(roles::check_domain_grant)
                .head(roles::check_domain_grant)
                .put(roles::grant_domain)
                .delete(roles::revoke_domain),
        )
        .route(
            "/identity/v3/projects",
            get(projects::list).post(projects::create),
        )
        .route(
            "/identity/v3/projects/{id}",
            get(projects::show)
                .patch(projects::update)
                .delete(projects::delete),
        )
        .route(
            "/identity/v3/projects/{project_id}/users/{user_id}/roles",
            get(roles::list_project_grants),
        )
        .route(
            "/identity/v3/projects/{project_id}/users/{user_id}/roles/{role_id}",
            get(roles::check_project_grant)
                .head(roles::check_project_grant)
                .put(roles::grant_project)
                .delete(roles::revoke_project),
        )
        .route("/identity/v3/users", get(users::list).post(users::create))
        .route(
            "/identity/v3/users/{id}",
            get(users::show).patch(users::update).delete(users::delete),
        )
        .route(
            "/identity/v3/users/{id}/password",
            axum::routing::post(users::change_password),
        )
        .route("/identity/v3/users/{id}/projects", get(users::projects))
        .route("/identity/v3/roles", get(roles::list).post(roles::create))
        .route(
            "/identity/v3/roles/{id}",
            get(roles::show).delete(roles::delete),
        )
        .route("/identity/v3/role_assignments", get(roles::assignments))
        .route("/identity", get(versions::list))
        .route("/identity/", get(versions::list))
        .route(
            "/identity/{*rest}",
            axum::routing::any(fault::unknown_route),
        )
        .layer(from_fn_with_state(state.clone(), auth::optional));

    v3.layer(from_fn(|req, next| {
        fault::render(Service::Identity, req, next)
    }))
    .with_state(state)
}
