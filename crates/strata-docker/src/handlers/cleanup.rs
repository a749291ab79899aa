//! `GraphDriver.Cleanup`: dockerd is stopping. Unmount everything of the home and forget the
//! saved Init, so a plugin restarted now waits for dockerd's next `Init`.

use tracing::warn;

use super::blocking;
use crate::error::{chain, RequestError};
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::reply::Reply;
use crate::wire::Method;

/// `{}` once every mount of the home is gone.
pub(crate) async fn handle<S: LayerStore>(plugin: &Plugin<S>) -> Result<Reply, RequestError> {
    blocking(plugin, Method::Cleanup, |s| Ok(s.cleanup()?)).await?;
    if let Some(record) = plugin.record() {
        if let Err(e) = record.remove() {
            warn!(error = %chain(&e), "cannot remove the saved Init");
        }
    }
    Ok(Reply::empty())
}
