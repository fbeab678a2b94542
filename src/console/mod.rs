//! The web console (`--console-listen`): a small single-page application
//! embedded in the binary and the read-only JSON API under `/api/` it
//! calls, over the same service layer and bearer tokens as gRPC.

pub mod api;

use std::sync::{Arc, OnceLock};

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use crate::api::auth::Tokens;
use crate::api::pb;
use crate::service::Warden;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The page allows only its own script and style: whatever an id or a
/// detail contains is shown as text, never run.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The console's routes: the page and its files without a token (the page
/// asks for one), the JSON API behind the HTTP guard (token, body limit,
/// requests in flight, time bound) with `options`.
pub fn router(warden: Arc<Warden>, tokens: Tokens, options: &crate::http::HttpOptions) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .nest(
            "/api",
            api::guarded(api::Console { warden }, tokens, options),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

fn descriptors() -> Result<&'static DescriptorPool, String> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

fn message_descriptor(full_name: &str) -> Result<prost_reflect::MessageDescriptor, String> {
    descriptors()?
        .get_message_by_name(full_name)
        .ok_or_else(|| format!("{full_name} is not in the descriptor set"))
}

/// A protobuf message (`full_name`, e.g. `warden.v1.CheckResponse`) as canonical protobuf JSON (field names as the
/// `.proto` writes them, enum values by name, defaults included), read
/// through the descriptor set: every field the message has, including
/// ones added after this was written, without a hand-kept mapping.
pub fn proto_json<M: prost::Message>(
    message: &M,
    full_name: &str,
) -> Result<serde_json::Value, String> {
    let descriptor = message_descriptor(full_name)?;
    let mut dynamic = DynamicMessage::new(descriptor);
    dynamic.transcode_from(message).map_err(|e| e.to_string())?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| e.to_string())
}

/// A protobuf message read from protobuf JSON (the inverse of
/// [`proto_json`]); an error is `path: what is wrong`, naming the field
/// that did not fit (`body` when it is the whole).
pub fn proto_from_json<M: prost::Message + Default>(
    json: serde_json::Value,
    full_name: &str,
) -> Result<M, String> {
    let descriptor = message_descriptor(full_name)?;
    let mut track = serde_path_to_error::Track::new();
    let tracked = serde_path_to_error::Deserializer::new(json, &mut track);
    let dynamic = DynamicMessage::deserialize(descriptor, tracked).map_err(|e| {
        let path = track.path().to_string();
        let path = if path.is_empty() || path == "." {
            "body".to_string()
        } else {
            path
        };
        format!("{path}: {e}")
    })?;
    dynamic.transcode_to::<M>().map_err(|e| e.to_string())
}
