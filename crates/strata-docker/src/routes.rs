//! One handler per protocol method: decode the request, run the store call on a blocking thread,
//! encode the reply. Errors become `{"Err": "<whole chain>"}` in one place ([`failure`]); `Diff`
//! and `ApplyDiff` stream their bodies through bounded channels. This module never touches
//! sockets or signals (see `server`) and never implements layer semantics (see `store`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::io;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use strata::{LayerId, StorageOpts};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::body::{ChannelBody, ChannelReader, ChannelWriter, DEPTH};

/// Request-body frames in flight for ApplyDiff. dockerd sends the tar in chunks of about 32 KiB;
/// a deeper queue (about 1 MiB) lets dockerd's hashing and the store's writes overlap on two
/// cores instead of taking turns, while memory stays bounded.
const APPLY_DEPTH: usize = 32;
use crate::state::InitRecord;
use crate::store::LayerStore;
use crate::wire::{self, LayerRequest};

/// Largest JSON request body accepted (dockerd's are a few hundred bytes).
const MAX_JSON_BODY: usize = 1 << 20;

/// The body type of every reply.
pub(crate) type ReplyBody = BoxBody<Bytes, io::Error>;

/// What a handler could not do. Displayed (with its sources) as the `Err` of the reply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RouteError {
    /// No such protocol method.
    #[error("unknown plugin method {0:?}")]
    UnknownMethod(String),
    /// The protocol only uses POST.
    #[error("method {0} is not allowed: the plugin protocol uses POST")]
    NotPost(Method),
    /// The request body could not be read.
    #[error("read the request body of {method}")]
    ReadBody {
        /// The protocol method.
        method: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The request body is not the JSON the method takes.
    #[error("decode the request body of {method}")]
    Decode {
        /// The protocol method.
        method: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A store call came before `GraphDriver.Init`.
    #[error("the plugin is not initialised: dockerd has not sent GraphDriver.Init yet")]
    NotInitialised,
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] strata::Error),
    /// Sending the `Diff` tar failed.
    #[error("send the diff of layer {id}")]
    SendDiff {
        /// The layer.
        id: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The blocking task died (a panic in the store).
    #[error("the {method} call did not finish")]
    Task {
        /// The protocol method.
        method: String,
        /// The cause.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl RouteError {
    /// A failure worth a warning (a missing layer is routine: dockerd probes and retries).
    fn is_routine(&self) -> bool {
        matches!(self, RouteError::Store(e) if e.is_not_found())
    }
}

/// The whole error chain on one line: `outer: cause: root cause`.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(s, ": {cause}");
        source = cause.source();
    }
    s
}

/// The plugin's state: the store that `Init` opened, shared by all connections.
pub(crate) struct Plugin<S> {
    store: RwLock<Option<Arc<S>>>,
    record: Option<InitRecord>,
}

impl<S> std::fmt::Debug for Plugin<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let initialised = match self.store.read() {
            Ok(g) => g.is_some(),
            Err(poisoned) => poisoned.into_inner().is_some(),
        };
        f.debug_struct("Plugin")
            .field("initialised", &initialised)
            .field("record", &self.record)
            .finish()
    }
}

impl<S: LayerStore> Plugin<S> {
    /// A plugin with no store yet; `record` keeps the last `Init` across plugin restarts.
    pub(crate) fn new(record: Option<InitRecord>) -> Plugin<S> {
        Plugin {
            store: RwLock::new(None),
            record,
        }
    }

    /// Reopens the store the last `Init` named, when the plugin restarts while dockerd runs
    /// (dockerd sends `Init` only once, at its own start). A failure leaves the plugin waiting
    /// for the next `Init`.
    pub(crate) fn resume(&self) {
        let Some(record) = &self.record else { return };
        let init = match record.load() {
            Ok(Some(init)) => init,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %chain(&e), "cannot read the saved Init; waiting for dockerd's");
                return;
            }
        };
        if !std::path::Path::new(&init.home).is_dir() {
            debug!(home = %init.home, "saved Init names a home that is gone; not resuming");
            return;
        }
        match S::open(&init) {
            Ok(store) => {
                debug!(home = %init.home, "resumed the store of the last Init");
                self.install(store);
            }
            Err(e) => warn!(home = %init.home, error = %chain(&e), "cannot resume the last Init"),
        }
    }

    fn current(&self) -> Option<Arc<S>> {
        match self.store.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn install(&self, store: S) {
        let mut g = match self.store.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = Some(Arc::new(store));
    }
}

/// A successful reply.
enum Reply {
    Json(Vec<u8>),
    Stream(ChannelBody),
    EmptyStream,
}

fn json<T: Serialize>(value: &T) -> Reply {
    // Serialising these plain structs cannot fail (string keys, no maps with odd keys).
    Reply::Json(serde_json::to_vec(value).expect("wire types serialise to JSON"))
}

/// Serves one HTTP request; never fails at the HTTP level (errors are protocol replies).
pub(crate) async fn handle<S: LayerStore>(
    plugin: Arc<Plugin<S>>,
    req: Request<Incoming>,
) -> Result<Response<ReplyBody>, Infallible> {
    let start = Instant::now();
    let method = req.uri().path().trim_start_matches('/').to_owned();
    let (id, result) = if req.method() != Method::POST {
        (
            String::new(),
            Err(RouteError::NotPost(req.method().clone())),
        )
    } else {
        dispatch(&plugin, &method, req, start).await
    };
    let response = match result {
        Ok(reply) => {
            // A streamed Diff logs its line when the stream ends.
            if !matches!(reply, Reply::Stream(_)) {
                debug!(method = %method, id = %id, duration_ms = elapsed_ms(start), "request");
            }
            success(reply)
        }
        Err(e) => {
            let message = chain(&e);
            debug!(method = %method, id = %id, duration_ms = elapsed_ms(start), error = %message, "request failed");
            if !e.is_routine() {
                warn!(method = %method, id = %id, error = %message, "request failed");
            }
            failure(&method, &e, message)
        }
    };
    Ok(response)
}

fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn success(reply: Reply) -> Response<ReplyBody> {
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
fn failure(method: &str, err: &RouteError, message: String) -> Response<ReplyBody> {
    let status = match err {
        RouteError::UnknownMethod(_) => StatusCode::NOT_FOUND,
        RouteError::NotPost(_) => StatusCode::METHOD_NOT_ALLOWED,
        _ if method == "GraphDriver.Diff" => StatusCode::INTERNAL_SERVER_ERROR,
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

type Outcome = (String, Result<Reply, RouteError>);

async fn dispatch<S: LayerStore>(
    plugin: &Arc<Plugin<S>>,
    method: &str,
    req: Request<Incoming>,
    start: Instant,
) -> Outcome {
    match method {
        "GraphDriver.ApplyDiff" => {
            let query = wire::ApplyDiffQuery::parse(req.uri().query().unwrap_or(""));
            let id = query.id.clone();
            (id, apply_diff(plugin, query, req.into_body()).await)
        }
        "Plugin.Activate"
        | "GraphDriver.Init"
        | "GraphDriver.Capabilities"
        | "GraphDriver.Status"
        | "GraphDriver.Create"
        | "GraphDriver.CreateReadWrite"
        | "GraphDriver.Remove"
        | "GraphDriver.Get"
        | "GraphDriver.Put"
        | "GraphDriver.Exists"
        | "GraphDriver.GetMetadata"
        | "GraphDriver.Cleanup"
        | "GraphDriver.Diff"
        | "GraphDriver.Changes"
        | "GraphDriver.DiffSize" => {
            let body = match read_json_body(method, req.into_body()).await {
                Ok(b) => b,
                Err(e) => return (String::new(), Err(e)),
            };
            json_call(plugin, method, &body, start).await
        }
        other => (
            String::new(),
            Err(RouteError::UnknownMethod(other.to_owned())),
        ),
    }
}

async fn read_json_body(method: &str, body: Incoming) -> Result<Bytes, RouteError> {
    Limited::new(body, MAX_JSON_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|source| RouteError::ReadBody {
            method: method.to_owned(),
            source,
        })
}

fn decode<T: serde::de::DeserializeOwned + Default>(
    method: &str,
    body: &[u8],
) -> Result<T, RouteError> {
    wire::parse_body(body).map_err(|source| RouteError::Decode {
        method: method.to_owned(),
        source,
    })
}

fn layer_id(s: &str) -> Result<LayerId, RouteError> {
    Ok(s.parse::<LayerId>()?)
}

fn parent_id(s: &str) -> Result<Option<LayerId>, RouteError> {
    if s.is_empty() {
        Ok(None)
    } else {
        layer_id(s).map(Some)
    }
}

/// Runs a store call on a blocking thread.
async fn blocking<S: LayerStore, T: Send + 'static>(
    plugin: &Plugin<S>,
    method: &str,
    call: impl FnOnce(&S) -> Result<T, RouteError> + Send + 'static,
) -> Result<T, RouteError> {
    let store = plugin.current().ok_or(RouteError::NotInitialised)?;
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .map_err(|source| RouteError::Task {
            method: method.to_owned(),
            source,
        })?
}

async fn json_call<S: LayerStore>(
    plugin: &Arc<Plugin<S>>,
    method: &str,
    body: &[u8],
    start: Instant,
) -> Outcome {
    match method {
        "Plugin.Activate" => (
            String::new(),
            Ok(json(&wire::ActivateResponse::graph_driver())),
        ),
        "GraphDriver.Init" => {
            let init: wire::InitRequest = match decode(method, body) {
                Ok(i) => i,
                Err(e) => return (String::new(), Err(e)),
            };
            let home = init.home.clone();
            (home, init_store(plugin, method, init).await)
        }
        "GraphDriver.Capabilities" => (
            String::new(),
            Ok(json(&wire::CapabilitiesResponse {
                capabilities: wire::Capabilities {
                    reproduces_exact_diffs: false,
                },
            })),
        ),
        "GraphDriver.Status" => {
            let r = blocking(plugin, method, |s| {
                Ok(wire::StatusResponse {
                    status: s.status().into_iter().map(|(k, v)| [k, v]).collect(),
                })
            })
            .await;
            (String::new(), r.map(|s| json(&s)))
        }
        "GraphDriver.Cleanup" => {
            let r = blocking(plugin, method, |s| Ok(s.cleanup()?)).await;
            if r.is_ok() {
                // dockerd is shutting down: a plugin restarted now must not reopen this home.
                if let Some(record) = &plugin.record {
                    if let Err(e) = record.remove() {
                        warn!(error = %chain(&e), "cannot remove the saved Init");
                    }
                }
            }
            (String::new(), r.map(|()| json(&wire::EmptyResponse {})))
        }
        _ => {
            let req: LayerRequest = match decode(method, body) {
                Ok(r) => r,
                Err(e) => return (String::new(), Err(e)),
            };
            let id = req.id.clone();
            (id, layer_call(plugin, method, req, start).await)
        }
    }
}

async fn init_store<S: LayerStore>(
    plugin: &Arc<Plugin<S>>,
    method: &str,
    init: wire::InitRequest,
) -> Result<Reply, RouteError> {
    let opened = {
        let init = init.clone();
        tokio::task::spawn_blocking(move || S::open(&init))
            .await
            .map_err(|source| RouteError::Task {
                method: method.to_owned(),
                source,
            })??
    };
    plugin.install(opened);
    if let Some(record) = &plugin.record {
        if let Err(e) = record.save(&init) {
            warn!(error = %chain(&e), "cannot save Init; a restarted plugin will wait for dockerd's next Init");
        }
    }
    Ok(json(&wire::EmptyResponse {}))
}

async fn layer_call<S: LayerStore>(
    plugin: &Arc<Plugin<S>>,
    method: &str,
    req: LayerRequest,
    start: Instant,
) -> Result<Reply, RouteError> {
    let id = layer_id(&req.id)?;
    let parent = parent_id(&req.parent)?;
    let reply = match method {
        "GraphDriver.Create" | "GraphDriver.CreateReadWrite" => {
            let opts = match &req.storage_opt {
                Some(map) => StorageOpts::parse(map)?,
                None => StorageOpts::parse(&BTreeMap::new())?,
            };
            let rw = method == "GraphDriver.CreateReadWrite";
            blocking(plugin, method, move |s| {
                if rw {
                    s.create_read_write(&id, parent.as_ref(), &opts)?;
                } else {
                    s.create(&id, parent.as_ref(), &opts)?;
                }
                Ok(())
            })
            .await?;
            json(&wire::EmptyResponse {})
        }
        "GraphDriver.Remove" => {
            blocking(plugin, method, move |s| Ok(s.remove(&id)?)).await?;
            json(&wire::EmptyResponse {})
        }
        "GraphDriver.Get" => {
            let label = req.mount_label;
            let dir = blocking(plugin, method, move |s| Ok(s.get(&id, &label)?)).await?;
            json(&wire::GetResponse {
                dir: dir.to_string_lossy().into_owned(),
            })
        }
        "GraphDriver.Put" => {
            blocking(plugin, method, move |s| Ok(s.put(&id)?)).await?;
            json(&wire::EmptyResponse {})
        }
        "GraphDriver.Exists" => {
            let exists = blocking(plugin, method, move |s| Ok(s.exists(&id))).await?;
            json(&wire::ExistsResponse { exists })
        }
        "GraphDriver.GetMetadata" => {
            let metadata = blocking(plugin, method, move |s| Ok(s.metadata(&id)?)).await?;
            json(&wire::MetadataResponse { metadata })
        }
        "GraphDriver.Changes" => {
            let changes = blocking(
                plugin,
                method,
                move |s| Ok(s.changes(&id, parent.as_ref())?),
            )
            .await?;
            json(&wire::ChangesResponse { changes })
        }
        "GraphDriver.DiffSize" => {
            let size = blocking(plugin, method, move |s| {
                Ok(s.diff_size(&id, parent.as_ref())?)
            })
            .await?;
            json(&wire::SizeResponse { size })
        }
        "GraphDriver.Diff" => return diff(plugin, id, parent, start).await,
        other => return Err(RouteError::UnknownMethod(other.to_owned())),
    };
    Ok(reply)
}

/// `Diff`: the store writes the tar on a blocking thread into a bounded channel; the reply
/// starts once the first chunk exists, so an early failure is still an error status. A failure
/// after that aborts the body, which dockerd sees as a broken tar, never as a short valid one.
async fn diff<S: LayerStore>(
    plugin: &Arc<Plugin<S>>,
    id: LayerId,
    parent: Option<LayerId>,
    start: Instant,
) -> Result<Reply, RouteError> {
    const METHOD: &str = "GraphDriver.Diff";
    let store = plugin.current().ok_or(RouteError::NotInitialised)?;
    let (tx, mut rx) = mpsc::channel(DEPTH);
    let task = tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter::new(tx);
        let result = store
            .diff(&id, parent.as_ref(), &mut out)
            .map_err(RouteError::from)
            .and_then(|()| {
                std::io::Write::flush(&mut out).map_err(|source| RouteError::SendDiff {
                    id: id.to_string(),
                    source,
                })
            });
        if let Err(e) = &result {
            if out.sent_any() {
                out.abort(chain(e));
            }
        }
        (id, result)
    });
    match rx.recv().await {
        Some(Ok(first)) => {
            // Headers go out now; the request's log line is written when the stream ends.
            tokio::spawn(async move {
                match task.await {
                    Ok((id, Ok(()))) => {
                        debug!(method = %METHOD, id = %id, duration_ms = elapsed_ms(start), "request")
                    }
                    Ok((id, Err(e))) => {
                        warn!(method = %METHOD, id = %id, duration_ms = elapsed_ms(start), error = %chain(&e), "diff stream aborted")
                    }
                    Err(e) => warn!(method = %METHOD, error = %e, "diff task died"),
                }
            });
            Ok(Reply::Stream(ChannelBody::new(first, rx)))
        }
        // Nothing was sent: the task is done (an abort is only sent after data).
        Some(Err(_)) | None => match task.await {
            Ok((_, Ok(()))) => Ok(Reply::EmptyStream),
            Ok((_, Err(e))) => Err(e),
            Err(source) => Err(RouteError::Task {
                method: METHOD.to_owned(),
                source,
            }),
        },
    }
}

/// `ApplyDiff`: the request body is forwarded chunk by chunk to the store on a blocking thread.
/// The body is read to its end even when the store stops early, so the connection stays usable.
async fn apply_diff<S: LayerStore>(
    plugin: &Arc<Plugin<S>>,
    query: wire::ApplyDiffQuery,
    mut body: Incoming,
) -> Result<Reply, RouteError> {
    const METHOD: &str = "GraphDriver.ApplyDiff";
    let ids = layer_id(&query.id).and_then(|id| Ok((id, parent_id(&query.parent)?)));
    let (tx, rx) = mpsc::channel(APPLY_DEPTH);
    let forward = async move {
        let mut tx = Some(tx);
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if let Some(sender) = &tx {
                        if sender.send(Ok(data)).await.is_err() {
                            // The store stopped reading; keep draining the body.
                            tx = None;
                        }
                    }
                }
                Err(e) => {
                    if let Some(sender) = &tx {
                        let _ = sender
                            .send(Err(io::Error::other(format!("read the layer tar: {e}"))))
                            .await;
                    }
                    break;
                }
            }
        }
    };
    let apply = async move {
        let (id, parent) = ids?;
        blocking(plugin, METHOD, move |s| {
            let mut reader = ChannelReader::new(rx);
            Ok(s.apply_diff(&id, parent.as_ref(), &mut reader)?)
        })
        .await
    };
    let ((), size) = tokio::join!(forward, apply);
    Ok(json(&wire::SizeResponse { size: size? }))
}
