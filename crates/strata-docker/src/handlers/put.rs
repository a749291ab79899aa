//! `GraphDriver.Put`: release one `Get` (the last one unmounts).

use super::{blocking, layer_id};
use crate::error::RequestError;
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::reply::Reply;
use crate::wire::{LayerRequest, Method};

/// `{}`.
pub(crate) async fn handle<S: LayerStore>(
    plugin: &Plugin<S>,
    req: LayerRequest,
) -> Result<Reply, RequestError> {
    let id = layer_id(&req.id)?;
    blocking(plugin, Method::Put, move |s| Ok(s.put(&id)?)).await?;
    Ok(Reply::empty())
}
