//! `GraphDriver.Changes`: what `docker diff` lists.

use super::{blocking, layer_id, parent_id};
use crate::error::RequestError;
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::reply::Reply;
use crate::wire::{ChangesResponse, LayerRequest, Method};

/// `{"Changes": [{"Path": ..., "Kind": 0|1|2}, ...]}`.
pub(crate) async fn handle<S: LayerStore>(
    plugin: &Plugin<S>,
    req: LayerRequest,
) -> Result<Reply, RequestError> {
    let id = layer_id(&req.id)?;
    let parent = parent_id(&req.parent)?;
    let changes = blocking(plugin, Method::Changes, move |s| {
        Ok(s.changes(&id, parent.as_ref())?)
    })
    .await?;
    Ok(Reply::json(&ChangesResponse { changes }))
}
