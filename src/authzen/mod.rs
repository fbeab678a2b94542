//! The OpenID AuthZEN Authorization API 1.0 over HTTP JSON, one tenant per
//! organization in the path. It maps JSON to Warden's questions and back
//! and asks the same service calls as CheckService; it holds no policy logic.

pub mod mapping;
pub mod routes;
pub mod types;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::service::Warden;
use routes::AuthzenState;

/// Largest AuthZEN request body: room for a full evaluations list (1,000
/// items of a few hundred bytes each, described records included).
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// The AuthZEN routes over `warden`; `tls` says whether the listener
/// serves TLS, for the scheme of the metadata's URLs.
pub fn router(warden: Arc<Warden>, tls: bool) -> Router {
    let api = "/orgs/{org_id}/access/v1";
    Router::new()
        .route(&format!("{api}/evaluation"), post(routes::evaluation))
        .route(&format!("{api}/evaluations"), post(routes::evaluations))
        .route(
            &format!("{api}/search/subject"),
            post(routes::search_subject),
        )
        .route(
            &format!("{api}/search/resource"),
            post(routes::search_resource),
        )
        .route(&format!("{api}/search/action"), post(routes::search_action))
        .route(
            "/.well-known/authzen-configuration/orgs/{org_id}",
            get(routes::metadata),
        )
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(AuthzenState { warden, tls })
}
