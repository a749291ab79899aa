//! `GraphDriver.Remove`: delete a layer (absent already is fine, as in moby).

use super::{blocking, layer_id};
use crate::error::RequestError;
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::reply::Reply;
use crate::wire::{LayerRequest, Method};

/// `{}` once the layer is gone.
pub(crate) async fn handle<S: LayerStore>(
    plugin: &Plugin<S>,
    req: LayerRequest,
) -> Result<Reply, RequestError> {
    let id = layer_id(&req.id)?;
    blocking(plugin, Method::Remove, move |s| Ok(s.remove(&id)?)).await?;
    Ok(Reply::empty())
}
