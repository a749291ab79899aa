//! The plugin's state, shared by every connection: the store that the last `GraphDriver.Init`
//! opened, and the record that lets a restarted plugin reopen it. This module never speaks HTTP.

use std::path::Path;
use std::sync::{Arc, RwLock};

use tracing::{debug, warn};

use crate::error::chain;
use crate::layer_store::LayerStore;
use crate::saved_init::InitRecord;
use crate::Limits;

/// The plugin's state: the store that `Init` opened, shared by all connections.
pub(crate) struct Plugin<S> {
    store: RwLock<Option<Arc<S>>>,
    record: Option<InitRecord>,
    limits: Limits,
    /// Held by an `Init` from its checks until its store is installed: one `Init` at a time.
    init: tokio::sync::Mutex<()>,
}

impl<S> std::fmt::Debug for Plugin<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let initialised = match self.store.read() {
            Ok(g) => g.is_some(),
            Err(poisoned) => poisoned.into_inner().is_some(),
        };
        f.debug_struct("Plugin")
            .field("initialised", &initialised)
            .field("record", &self.record)
            .field("limits", &self.limits)
            .finish()
    }
}

impl<S: LayerStore> Plugin<S> {
    /// A plugin with no store yet; `record` keeps the last `Init` across plugin restarts.
    pub(crate) fn new(record: Option<InitRecord>, limits: Limits) -> Plugin<S> {
        Plugin {
            store: RwLock::new(None),
            record,
            limits,
            init: tokio::sync::Mutex::new(()),
        }
    }

    /// Reopens the store the last `Init` named, when the plugin restarts while dockerd runs
    /// (dockerd sends `Init` only once, at its own start). A failure leaves the plugin waiting
    /// for the next `Init`.
    pub(crate) fn resume(&self) {
        let Some(record) = &self.record else { return };
        let init = match record.load() {
            Ok(Some(init)) => init,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %chain(&e), "cannot read the saved Init; waiting for dockerd's");
                return;
            }
        };
        if !Path::new(&init.home).is_absolute() {
            warn!(home = %init.home, "saved Init names a relative home; waiting for dockerd's Init");
            return;
        }
        if !Path::new(&init.home).is_dir() {
            debug!(home = %init.home, "saved Init names a home that is gone; not resuming");
            return;
        }
        match S::open(&init) {
            Ok(store) => {
                debug!(home = %init.home, "resumed the store of the last Init");
                self.install(store);
            }
            Err(e) => warn!(home = %init.home, error = %chain(&e), "cannot resume the last Init"),
        }
    }

    /// The store of the last `Init`, if any.
    pub(crate) fn current(&self) -> Option<Arc<S>> {
        match self.store.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Makes `store` the one every later call uses.
    pub(crate) fn install(&self, store: S) {
        let mut g = match self.store.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = Some(Arc::new(store));
    }

    /// The timeouts and connection cap.
    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Serialises `Init`s: held from checking the current store until the new one is installed.
    pub(crate) async fn init_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.init.lock().await
    }

    /// Where the last `Init` is saved, if anywhere.
    pub(crate) fn record(&self) -> Option<&InitRecord> {
        self.record.as_ref()
    }
}
