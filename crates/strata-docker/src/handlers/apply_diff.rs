//! `GraphDriver.ApplyDiff`: the request body is the layer tar, forwarded chunk by chunk to the
//! store on a blocking thread.

use std::io;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::{blocking, layer_id, parent_id};
use crate::body::{ChannelReader, Chunk};
use crate::error::RequestError;
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::reply::Reply;
use crate::router::stalled;
use crate::wire::{ApplyDiffQuery, Method, SizeResponse};

/// Request-body frames in flight. dockerd sends the tar in chunks of about 32 KiB; a deeper
/// queue (about 1 MiB) lets dockerd's hashing and the store's writes overlap on two cores
/// instead of taking turns, while memory stays bounded.
const APPLY_DEPTH: usize = 32;

/// `{"Size": bytes}` once the tar is applied. The body is read to its end even when the store
/// stops early, so the connection stays usable. A body that pauses longer than the body
/// timeout, breaks, or is abandoned reaches the store as a read error, never as a short tar:
/// the store then leaves the layer as it was and lets go of it.
pub(crate) async fn handle<S: LayerStore>(
    plugin: &Plugin<S>,
    query: ApplyDiffQuery,
    mut body: Incoming,
) -> Result<Reply, RequestError> {
    let ids = layer_id(&query.id).and_then(|id| Ok((id, parent_id(&query.parent)?)));
    let within = plugin.limits().body_timeout;
    let (tx, rx) = mpsc::channel(APPLY_DEPTH);
    let forward = async move {
        // None once the store stopped reading: the rest of the body is drained and dropped.
        let mut tx = Some(tx);
        loop {
            let (next, last) = match tokio::time::timeout(within, body.frame()).await {
                Err(_) => (Chunk::Abort(stalled(within)), true),
                Ok(None) => (Chunk::End, true),
                Ok(Some(Err(e))) => (
                    Chunk::Abort(io::Error::other(format!("read the layer tar: {e}"))),
                    true,
                ),
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => (Chunk::Data(data), false),
                    Err(_) => continue, // trailers
                },
            };
            if let Some(sender) = &tx {
                if sender.send(next).await.is_err() {
                    tx = None;
                }
            }
            if last {
                break;
            }
        }
    };
    let apply = async move {
        let (id, parent) = ids?;
        blocking(plugin, Method::ApplyDiff, move |s| {
            let mut reader = ChannelReader::new(rx);
            Ok(s.apply_diff(&id, parent.as_ref(), &mut reader)?)
        })
        .await
    };
    let ((), size) = tokio::join!(forward, apply);
    Ok(Reply::json(&SizeResponse { size: size? }))
}
