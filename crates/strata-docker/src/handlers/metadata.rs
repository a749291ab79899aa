//! `GraphDriver.GetMetadata`: the directories `docker inspect` shows as `.GraphDriver.Data`.

use super::{blocking, layer_id};
use crate::error::RequestError;
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::reply::Reply;
use crate::wire::{LayerRequest, MetadataResponse, Method};

/// `{"Metadata": {"LowerDir": ..., "MergedDir": ..., ...}}`.
pub(crate) async fn handle<S: LayerStore>(
    plugin: &Plugin<S>,
    req: LayerRequest,
) -> Result<Reply, RequestError> {
    let id = layer_id(&req.id)?;
    let metadata = blocking(plugin, Method::GetMetadata, move |s| Ok(s.metadata(&id)?)).await?;
    Ok(Reply::json(&MetadataResponse { metadata }))
}
