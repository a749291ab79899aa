//! `GraphDriver.Get`: mount the layer (refcounted) and answer its root directory.

use super::{blocking, layer_id};
use crate::error::RequestError;
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::reply::Reply;
use crate::wire::{GetResponse, LayerRequest, Method};

/// `{"Dir": "<root>"}`.
pub(crate) async fn handle<S: LayerStore>(
    plugin: &Plugin<S>,
    req: LayerRequest,
) -> Result<Reply, RequestError> {
    let id = layer_id(&req.id)?;
    let label = req.mount_label;
    let dir = blocking(plugin, Method::Get, move |s| Ok(s.get(&id, &label)?)).await?;
    Ok(Reply::json(&GetResponse {
        dir: dir.to_string_lossy().into_owned(),
    }))
}
