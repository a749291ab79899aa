//! `GraphDriver.ApplyDiff`: the request body is the layer tar, forwarded chunk by chunk to the
//! store on a blocking thread.

use std::io;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::{blocking, layer_id, parent_id};
use crate::body::ChannelReader;
use crate::error::RequestError;
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::reply::Reply;
use crate::wire::{ApplyDiffQuery, Method, SizeResponse};

/// Request-body frames in flight. dockerd sends the tar in chunks of about 32 KiB; a deeper
/// queue (about 1 MiB) lets dockerd's hashing and the store's writes overlap on two cores
/// instead of taking turns, while memory stays bounded.
const APPLY_DEPTH: usize = 32;

/// `{"Size": bytes}` once the tar is applied. The body is read to its end even when the store
/// stops early, so the connection stays usable.
pub(crate) async fn handle<S: LayerStore>(
    plugin: &Plugin<S>,
    query: ApplyDiffQuery,
    mut body: Incoming,
) -> Result<Reply, RequestError> {
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
        blocking(plugin, Method::ApplyDiff, move |s| {
            let mut reader = ChannelReader::new(rx);
            Ok(s.apply_diff(&id, parent.as_ref(), &mut reader)?)
        })
        .await
    };
    let ((), size) = tokio::join!(forward, apply);
    Ok(Reply::json(&SizeResponse { size: size? }))
}
