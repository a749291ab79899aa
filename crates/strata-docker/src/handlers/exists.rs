//! `GraphDriver.Exists`.

use super::{blocking, layer_id};
use crate::error::RequestError;
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::reply::Reply;
use crate::wire::{ExistsResponse, LayerRequest, Method};

/// `{"Exists": bool}`.
pub(crate) async fn handle<S: LayerStore>(
    plugin: &Plugin<S>,
    req: LayerRequest,
) -> Result<Reply, RequestError> {
    let id = layer_id(&req.id)?;
    let exists = blocking(plugin, Method::Exists, move |s| Ok(s.exists(&id))).await?;
    Ok(Reply::json(&ExistsResponse { exists }))
}
