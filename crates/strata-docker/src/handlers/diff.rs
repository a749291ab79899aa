//! `GraphDriver.Diff`: the layer's changes as a tar, streamed as the store writes it.

use std::time::Instant;

use strata::LayerId;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{layer_id, parent_id};
use crate::body::{ChannelBody, ChannelWriter, DEPTH};
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
        let mut out = ChannelWriter::new(tx);
        let result = write_diff(&*store, &id, parent.as_ref(), &mut out);
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
        // Nothing was sent: the task is done (an abort is only sent after data).
        Some(Err(_)) | None => match task.await {
            Ok((_, Ok(()))) => Ok(Reply::EmptyStream),
            Ok((_, Err(e))) => Err(e),
            Err(source) => Err(RequestError::Task {
                method: Method::Diff,
                source,
            }),
        },
    }
}

/// Writes the whole tar into `out` and flushes it.
fn write_diff<S: LayerStore>(
    store: &S,
    id: &LayerId,
    parent: Option<&LayerId>,
    out: &mut ChannelWriter,
) -> Result<(), RequestError> {
    store.diff(id, parent, out)?;
    std::io::Write::flush(out).map_err(|source| RequestError::SendDiff {
        id: id.to_string(),
        source,
    })
}
