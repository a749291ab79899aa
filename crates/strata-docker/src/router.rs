//! One HTTP request → one handler: check the verb, parse the [`Method`] once (in `wire`), decode
//! the body the method takes, call its handler in `handlers`, log, and encode the outcome
//! (`reply`). This module knows which handler serves which method and nothing of what they do.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use crate::error::{chain, RequestError};
use crate::handlers::{self, Writable};
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::reply::{failure, success, Reply, ReplyBody};
use crate::wire::{self, InitRequest, LayerRequest, Method};

/// Largest JSON request body accepted (dockerd's are a few hundred bytes).
const MAX_JSON_BODY: usize = 1 << 20;

/// Serves one HTTP request; never fails at the HTTP level (errors are protocol replies).
pub(crate) async fn handle<S: LayerStore>(
    plugin: Arc<Plugin<S>>,
    req: Request<Incoming>,
) -> Result<Response<ReplyBody>, Infallible> {
    let start = Instant::now();
    let path = req.uri().path().trim_start_matches('/').to_owned();
    let method = Method::from_path(&path);
    let mut id = String::new();
    let result = if req.method() != hyper::Method::POST {
        Err(RequestError::NotPost(req.method().clone()))
    } else if let Some(method) = method {
        route(&plugin, method, req, &mut id, start).await
    } else {
        Err(RequestError::UnknownMethod(path.clone()))
    };
    let name: &str = match method {
        Some(m) => m.name(),
        None => &path,
    };
    let response = match result {
        Ok(reply) => {
            // A streamed Diff logs its line when the stream ends.
            if !matches!(reply, Reply::Stream(_)) {
                debug!(method = %name, id = %id, duration_ms = elapsed_ms(start), "request");
            }
            success(reply)
        }
        Err(e) => {
            let message = chain(&e);
            debug!(method = %name, id = %id, duration_ms = elapsed_ms(start), error = %message, "request failed");
            if !e.is_routine() {
                warn!(method = %name, id = %id, error = %message, "request failed");
            }
            failure(method, &e, message)
        }
    };
    Ok(response)
}

/// Milliseconds since `start`, for the request log line.
pub(crate) fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// Decodes what `method` takes and runs its handler. `id` is set to the layer id (or the home,
/// for `Init`) for the log line.
async fn route<S: LayerStore>(
    plugin: &Arc<Plugin<S>>,
    method: Method,
    req: Request<Incoming>,
    id: &mut String,
    start: Instant,
) -> Result<Reply, RequestError> {
    let within = plugin.limits().body_timeout;
    match method {
        Method::Activate => {
            discard(method, req, within).await?;
            Ok(handlers::activate::handle())
        }
        Method::Init => {
            let init: InitRequest = decode(method, req, within).await?;
            id.clone_from(&init.home);
            handlers::init::handle(plugin, init).await
        }
        Method::Capabilities => {
            discard(method, req, within).await?;
            Ok(handlers::capabilities::handle())
        }
        Method::Status => {
            discard(method, req, within).await?;
            handlers::status::handle(plugin).await
        }
        Method::Cleanup => {
            discard(method, req, within).await?;
            handlers::cleanup::handle(plugin).await
        }
        Method::Create => {
            let r = layer(method, req, within, id).await?;
            handlers::create::handle(plugin, r, Writable::No).await
        }
        Method::CreateReadWrite => {
            let r = layer(method, req, within, id).await?;
            handlers::create::handle(plugin, r, Writable::Yes).await
        }
        Method::Remove => {
            handlers::remove::handle(plugin, layer(method, req, within, id).await?).await
        }
        Method::Get => handlers::get::handle(plugin, layer(method, req, within, id).await?).await,
        Method::Put => handlers::put::handle(plugin, layer(method, req, within, id).await?).await,
        Method::Exists => {
            handlers::exists::handle(plugin, layer(method, req, within, id).await?).await
        }
        Method::GetMetadata => {
            handlers::metadata::handle(plugin, layer(method, req, within, id).await?).await
        }
        Method::Changes => {
            handlers::changes::handle(plugin, layer(method, req, within, id).await?).await
        }
        Method::DiffSize => {
            handlers::diff_size::handle(plugin, layer(method, req, within, id).await?).await
        }
        Method::Diff => {
            handlers::diff::handle(plugin, layer(method, req, within, id).await?, start).await
        }
        Method::ApplyDiff => {
            let query = wire::ApplyDiffQuery::parse(req.uri().query().unwrap_or(""));
            id.clone_from(&query.id);
            handlers::apply_diff::handle(plugin, query, req.into_body()).await
        }
    }
}

/// Reads a whole JSON request body: at most [`MAX_JSON_BODY`] bytes, within `within` (such a
/// body is small and sent at once; a client that sends part of it and stalls is cut off).
async fn read_json_body(
    method: Method,
    req: Request<Incoming>,
    within: Duration,
) -> Result<Bytes, RequestError> {
    let read = Limited::new(req.into_body(), MAX_JSON_BODY).collect();
    match tokio::time::timeout(within, read).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(source)) => Err(RequestError::ReadBody { method, source }),
        Err(_) => Err(RequestError::ReadBody {
            method,
            source: Box::new(stalled(within)),
        }),
    }
}

/// The error of a request body that stopped arriving.
pub(crate) fn stalled(after: Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("the client sent no data for {after:?}"),
    )
}

/// Reads and decodes the JSON body `method` takes.
async fn decode<T: DeserializeOwned + Default>(
    method: Method,
    req: Request<Incoming>,
    within: Duration,
) -> Result<T, RequestError> {
    let body = read_json_body(method, req, within).await?;
    wire::parse_body(&body).map_err(|source| RequestError::Decode { method, source })
}

/// Reads and decodes the body of a per-layer call; `id` is set to its layer id.
async fn layer(
    method: Method,
    req: Request<Incoming>,
    within: Duration,
    id: &mut String,
) -> Result<LayerRequest, RequestError> {
    let r: LayerRequest = decode(method, req, within).await?;
    id.clone_from(&r.id);
    Ok(r)
}

/// Reads the body of a method that takes no arguments, so the connection stays usable.
async fn discard(
    method: Method,
    req: Request<Incoming>,
    within: Duration,
) -> Result<(), RequestError> {
    read_json_body(method, req, within).await.map(drop)
}
