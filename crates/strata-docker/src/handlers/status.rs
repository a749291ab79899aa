//! `GraphDriver.Status`: the store's label/value pairs for `docker info`.

use super::blocking;
use crate::error::RequestError;
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::reply::Reply;
use crate::wire::{Method, StatusResponse};

/// `{"Status":[[label, value], ...]}`.
pub(crate) async fn handle<S: LayerStore>(plugin: &Plugin<S>) -> Result<Reply, RequestError> {
    let status = blocking(plugin, Method::Status, |s| Ok(s.status())).await?;
    Ok(Reply::json(&StatusResponse {
        status: status.into_iter().map(|(k, v)| [k, v]).collect(),
    }))
}
