//! `GraphDriver.Init`: open the store of dockerd's home, make it the one every later call uses,
//! and save the request so that a restarted plugin reopens it.
//!
//! The home must be absolute. An `Init` for the home already open reopens it (dockerd
//! restarted). An `Init` for another home switches to it when no layer of the current home is
//! mounted (dockerd stopped, then started with another data root) and is refused while any is:
//! those mounts would be left behind with nothing to unmount them.

use std::path::{Path, PathBuf};

use tracing::{info, warn};

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
    if !Path::new(&init.home).is_absolute() {
        return Err(RequestError::RelativeHome { home: init.home });
    }
    let _one_at_a_time = plugin.init_lock().await;
    if let Some(current) = plugin.current() {
        let requested = init.home.clone();
        let switched = run(move || {
            if same_home(current.home(), Path::new(&requested)) {
                return Ok(None);
            }
            let mounted = current.mounted()?;
            match mounted.first() {
                None => Ok(Some(current.home().to_owned())),
                Some(example) => Err(RequestError::HomeInUse {
                    current: current.home().to_owned(),
                    requested,
                    mounted: mounted.len(),
                    example: example.to_string(),
                }),
            }
        })
        .await?;
        if let Some(old) = switched {
            info!(from = %old.display(), to = %init.home, "Init for another home; nothing was mounted, switching");
        }
    }
    let opened = {
        let init = init.clone();
        run(move || Ok(S::open(&init)?)).await?
    };
    plugin.install(opened);
    if let Some(record) = plugin.record() {
        if let Err(e) = record.save(&init) {
            warn!(error = %chain(&e), "cannot save Init; a restarted plugin will wait for dockerd's next Init");
        }
    }
    Ok(Reply::empty())
}

/// Runs blocking work of `Init` (opening a store probes the host; listing mounts reads the disk).
async fn run<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RequestError> + Send + 'static,
) -> Result<T, RequestError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|source| RequestError::Task {
            method: Method::Init,
            source,
        })?
}

/// Whether two homes are the same directory (symlinks resolved when both exist).
fn same_home(a: &Path, b: &Path) -> bool {
    let resolve = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p));
    a == b || resolve(a) == resolve(b)
}
