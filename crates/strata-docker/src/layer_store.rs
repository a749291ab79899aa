//! The seam between the protocol and the layer store: the handful of store calls the handlers make,
//! as a trait, so the HTTP side (keep-alive, streaming, errors, concurrency) is tested against a
//! fake without root, and served for real by `strata::Driver`. This module never speaks HTTP and
//! never implements layer semantics itself: the `Driver` impl only converts types.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use strata::{LayerId, StorageOpts};

use crate::wire::{Change, InitRequest};

/// What the handlers need from a layer store. Every method may block (disk, mounts); the handlers
/// call them on blocking threads, concurrently.
pub(crate) trait LayerStore: Send + Sync + 'static {
    /// Opens the store that `GraphDriver.Init` names.
    fn open(init: &InitRequest) -> strata::Result<Self>
    where
        Self: Sized;
    /// The home directory the store was opened on.
    fn home(&self) -> &Path;
    /// The layers that are mounted now (an `Init` for another home is refused while any is).
    fn mounted(&self) -> strata::Result<Vec<LayerId>>;
    /// Label/value pairs for `docker info`.
    fn status(&self) -> Vec<(String, String)>;
    /// Creates an image layer.
    fn create(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        opts: &StorageOpts,
    ) -> strata::Result<()>;
    /// Creates a container layer.
    fn create_read_write(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        opts: &StorageOpts,
    ) -> strata::Result<()>;
    /// Removes a layer (idempotent).
    fn remove(&self, id: &LayerId) -> strata::Result<()>;
    /// Whether the layer exists.
    fn exists(&self, id: &LayerId) -> bool;
    /// Mounts (refcounted) and returns the root directory.
    fn get(&self, id: &LayerId, mount_label: &str) -> strata::Result<PathBuf>;
    /// Releases one `get`.
    fn put(&self, id: &LayerId) -> strata::Result<()>;
    /// `LowerDir`, `MergedDir`, `UpperDir`, `WorkDir`.
    fn metadata(&self, id: &LayerId) -> strata::Result<BTreeMap<String, String>>;
    /// Unmounts everything of the home.
    fn cleanup(&self) -> strata::Result<()>;
    /// Applies an uncompressed layer tar; returns the layer's size.
    fn apply_diff(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        tar: &mut dyn Read,
    ) -> strata::Result<u64>;
    /// Streams the layer's changes against its parent as a tar.
    fn diff(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        out: &mut dyn Write,
    ) -> strata::Result<()>;
    /// The layer's changes against its parent.
    fn changes(&self, id: &LayerId, parent: Option<&LayerId>) -> strata::Result<Vec<Change>>;
    /// Bytes the layer adds on top of its parent.
    fn diff_size(&self, id: &LayerId, parent: Option<&LayerId>) -> strata::Result<u64>;
}
