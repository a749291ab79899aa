//! `GraphDriver.DiffSize`: what `docker ps -s` shows.

use super::{blocking, layer_id, parent_id};
use crate::error::RequestError;
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::reply::Reply;
use crate::wire::{LayerRequest, Method, SizeResponse};

/// `{"Size": bytes}`.
pub(crate) async fn handle<S: LayerStore>(
    plugin: &Plugin<S>,
    req: LayerRequest,
) -> Result<Reply, RequestError> {
    let id = layer_id(&req.id)?;
    let parent = parent_id(&req.parent)?;
    let size = blocking(plugin, Method::DiffSize, move |s| {
        Ok(s.diff_size(&id, parent.as_ref())?)
    })
    .await?;
    Ok(Reply::json(&SizeResponse { size }))
}
