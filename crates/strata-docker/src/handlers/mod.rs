//! One handler per protocol method, each in its own file named after the method: take the
//! decoded request, run the store call on a blocking thread ([`blocking`]), return a [`Reply`]
//! or a [`RequestError`]. Handlers never see HTTP (the router decodes, `reply` encodes) and
//! never implement layer semantics (the store does).
//!
//! [`Reply`]: crate::reply::Reply

pub(crate) mod activate;
pub(crate) mod apply_diff;
pub(crate) mod capabilities;
pub(crate) mod changes;
pub(crate) mod cleanup;
pub(crate) mod create;
pub(crate) mod diff;
pub(crate) mod diff_size;
pub(crate) mod exists;
pub(crate) mod get;
pub(crate) mod init;
pub(crate) mod metadata;
pub(crate) mod put;
pub(crate) mod remove;
pub(crate) mod status;

pub(crate) use create::Writable;

use strata::LayerId;

use crate::error::RequestError;
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::wire::Method;

/// A layer id from the wire (validated by the library's parser).
fn layer_id(s: &str) -> Result<LayerId, RequestError> {
    Ok(s.parse::<LayerId>()?)
}

/// A parent id from the wire; empty means none.
fn parent_id(s: &str) -> Result<Option<LayerId>, RequestError> {
    if s.is_empty() {
        Ok(None)
    } else {
        layer_id(s).map(Some)
    }
}

/// Runs a store call on a blocking thread (store calls touch the disk and the mount table).
async fn blocking<S: LayerStore, T: Send + 'static>(
    plugin: &Plugin<S>,
    method: Method,
    call: impl FnOnce(&S) -> Result<T, RequestError> + Send + 'static,
) -> Result<T, RequestError> {
    let store = plugin.current().ok_or(RequestError::NotInitialised)?;
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .map_err(|source| RequestError::Task { method, source })?
}
