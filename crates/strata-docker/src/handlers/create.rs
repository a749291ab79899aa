//! `GraphDriver.Create` (an image layer) and `GraphDriver.CreateReadWrite` (a container layer):
//! the same request, two store calls.

use std::collections::BTreeMap;

use strata::StorageOpts;

use super::{blocking, layer_id, parent_id};
use crate::error::RequestError;
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::reply::Reply;
use crate::wire::{LayerRequest, Method};

/// Which kind of layer to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writable {
    /// `Create`: an image layer.
    No,
    /// `CreateReadWrite`: a container layer.
    Yes,
}

/// `{}` once the layer exists; per-layer `StorageOpt` (`size`) is validated first.
pub(crate) async fn handle<S: LayerStore>(
    plugin: &Plugin<S>,
    req: LayerRequest,
    writable: Writable,
) -> Result<Reply, RequestError> {
    let id = layer_id(&req.id)?;
    let parent = parent_id(&req.parent)?;
    let opts = StorageOpts::parse(req.storage_opt.as_ref().unwrap_or(&BTreeMap::new()))?;
    let method = match writable {
        Writable::No => Method::Create,
        Writable::Yes => Method::CreateReadWrite,
    };
    blocking(plugin, method, move |s| {
        match writable {
            Writable::No => s.create(&id, parent.as_ref(), &opts)?,
            Writable::Yes => s.create_read_write(&id, parent.as_ref(), &opts)?,
        }
        Ok(())
    })
    .await?;
    Ok(Reply::empty())
}
