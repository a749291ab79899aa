//! `GraphDriver.Init`: open the store of dockerd's home, make it the one every later call uses,
//! and save the request so that a restarted plugin reopens it.

use tracing::warn;

use crate::error::{chain, RequestError};
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::reply::Reply;
use crate::wire::{InitRequest, Method};

/// `{}` once the store is open.
pub(crate) async fn handle<S: LayerStore>(
    plugin: &Plugin<S>,
    init: InitRequest,
) -> Result<Reply, RequestError> {
    let opened = {
        let init = init.clone();
        tokio::task::spawn_blocking(move || S::open(&init))
            .await
            .map_err(|source| RequestError::Task {
                method: Method::Init,
                source,
            })??
    };
    plugin.install(opened);
    if let Some(record) = plugin.record() {
        if let Err(e) = record.save(&init) {
            warn!(error = %chain(&e), "cannot save Init; a restarted plugin will wait for dockerd's next Init");
        }
    }
    Ok(Reply::empty())
}
