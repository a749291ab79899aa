//! Reply encoding: a handler's [`Reply`] or [`RequestError`] becomes the HTTP response. This is
//! the one place an error becomes the protocol's `{"Err": "<whole chain>"}` ([`failure`]).

use std::io;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::body::ChannelBody;
use crate::error::RequestError;
use crate::wire::{self, Method};

/// The body type of every reply.
pub(crate) type ReplyBody = BoxBody<Bytes, io::Error>;

/// What a successful handler answers.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A JSON body.
    Json(Vec<u8>),
    /// A tar streamed as it is produced (`Diff`).
    Stream(ChannelBody),
    /// An empty tar body (`Diff` of a layer without changes).
    EmptyStream,
}

impl Reply {
    /// A JSON reply of one of the `wire` types.
    pub(crate) fn json<T: Serialize>(value: &T) -> Reply {
        // Serialising these plain structs cannot fail (string keys, no maps with odd keys).
        Reply::Json(serde_json::to_vec(value).expect("wire types serialise to JSON"))
    }

    /// `{}`.
    pub(crate) fn empty() -> Reply {
        Reply::json(&wire::EmptyResponse {})
    }
}

/// The response of a successful call.
pub(crate) fn success(reply: Reply) -> Response<ReplyBody> {
    let (body, content_type): (ReplyBody, &'static str) = match reply {
        Reply::Json(bytes) => (
            Full::new(Bytes::from(bytes))
                .map_err(|never| match never {})
                .boxed(),
            wire::PLUGIN_MEDIA_TYPE,
        ),
        Reply::Stream(stream) => (stream.boxed(), "application/x-tar"),
        Reply::EmptyStream => (
            Empty::new().map_err(|never| match never {}).boxed(),
            "application/x-tar",
        ),
    };
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The one place an error becomes a protocol reply: `{"Err": "<chain>"}`. JSON methods answer
/// 200, which dockerd reads like any reply and whose `Err` it returns; `Diff` (whose 200 body is
/// read as a tar) and anything that is not a protocol call answer with an error status.
pub(crate) fn failure(
    method: Option<Method>,
    err: &RequestError,
    message: String,
) -> Response<ReplyBody> {
    let status = match err {
        RequestError::UnknownMethod(_) => StatusCode::NOT_FOUND,
        RequestError::NotPost(_) => StatusCode::METHOD_NOT_ALLOWED,
        _ if method.is_some_and(Method::replies_with_tar) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::OK,
    };
    let body = serde_json::to_vec(&wire::ErrorResponse { err: message })
        .expect("an error reply serialises to JSON");
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(wire::PLUGIN_MEDIA_TYPE),
    );
    response
}
