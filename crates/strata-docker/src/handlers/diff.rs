//! `GraphDriver.Diff`: the layer's changes as a tar, streamed as the store writes it.

use std::time::Instant;

use strata::LayerId;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{layer_id, parent_id};
use crate::body::{ChannelBody, ChannelWriter, Chunk, DEPTH};
use crate::error::{chain, RequestError};
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::reply::Reply;
use crate::router::elapsed_ms;
use crate::wire::{LayerRequest, Method};

/// The store writes the tar on a blocking thread into a bounded channel; the reply starts once
/// the first chunk exists, so an early failure is still an error status. A failure after that
/// aborts the body, which dockerd sees as a broken tar, never as a short valid one.
pub(crate) async fn handle<S: LayerStore>(
    plugin: &Plugin<S>,
    req: LayerRequest,
    start: Instant,
) -> Result<Reply, RequestError> {
    let id = layer_id(&req.id)?;
    let parent = parent_id(&req.parent)?;
    let store = plugin.current().ok_or(RequestError::NotInitialised)?;
    let (tx, mut rx) = mpsc::channel(DEPTH);
    let task = tokio::task::spawn_blocking(move || {
        let result = write_diff(&*store, &id, parent.as_ref(), ChannelWriter::new(tx));
        (id, result)
    });
    match rx.recv().await {
        Some(Chunk::Data(first)) => {
            // Headers go out now; the request's log line is written when the stream ends.
            tokio::spawn(async move {
                let method = Method::Diff;
                match task.await {
                    Ok((id, Ok(()))) => {
                        debug!(method = %method, id = %id, duration_ms = elapsed_ms(start), "request")
                    }
                    Ok((id, Err(e))) => {
                        warn!(method = %method, id = %id, duration_ms = elapsed_ms(start), error = %chain(&e), "diff stream aborted")
                    }
                    Err(e) => warn!(method = %method, error = %e, "diff task died"),
                }
            });
            Ok(Reply::Stream(ChannelBody::new(first, rx)))
        }
        // Nothing was sent: the task is done or dead (an abort is only sent after data).
        Some(Chunk::End | Chunk::Abort(_)) | None => match task.await {
            Ok((_, Ok(()))) => Ok(Reply::EmptyStream),
            Ok((_, Err(e))) => Err(e),
            Err(source) => Err(RequestError::Task {
                method: Method::Diff,
                source,
            }),
        },
    }
}

/// Writes the whole tar into `out` and ends the stream; on failure the stream is aborted if
/// it has started (and otherwise simply dropped: the caller answers with an error status).
fn write_diff<S: LayerStore>(
    store: &S,
    id: &LayerId,
    parent: Option<&LayerId>,
    mut out: ChannelWriter,
) -> Result<(), RequestError> {
    if let Err(e) = store.diff(id, parent, &mut out) {
        let e = RequestError::from(e);
        if out.sent_any() {
            out.abort(chain(&e));
        }
        return Err(e);
    }
    out.finish().map_err(|source| RequestError::SendDiff {
        id: id.to_string(),
        source,
    })
}
