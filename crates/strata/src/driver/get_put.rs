//! Get and Put: refcounted overlay mounts. The first Get mounts, the last Put unmounts (lazily)
//! and removes `merged`, as moby overlay2 does; the counting and mounting live in
//! [`crate::mount::refs`].

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::id::LayerId;
use crate::lock::LockKind;
use crate::mount::plan::{self, LayerMount, MountPlan};

use super::Driver;

impl Driver {
    /// Mounts the layer (or adds a reference to its mount) and returns the root filesystem path:
    /// `merged` for a layer with parents, its `diff` directory for a base layer.
    ///
    /// # Errors
    /// The layer does not exist, its chain cannot be mounted here, or the mount failed.
    pub fn get(&self, id: &LayerId, mount_label: &str) -> Result<PathBuf> {
        let _lock = self.layer_lock(id, LockKind::Exclusive)?;
        self.ensure_exists(id)?;
        let chain = self.lowers(id)?;
        if chain.is_empty() {
            // As moby overlay2: no parents, no mount.
            return Ok(self.layout.diff(id));
        }
        if let Some(merged) = self.mounts.reuse(id)? {
            return Ok(merged);
        }
        let read_only = self.layout.committed(id).exists();
        let plan = plan::plan(
            &self.layout,
            &LayerMount {
                id,
                lowers: &chain.0,
                read_only,
                mount_label,
            },
            &self.probes,
        )
        .map_err(|e| Error::Corrupt {
            id: id.to_string(),
            what: format!("cannot mount its chain: {e}"),
        })?;
        if let MountPlan::Direct(p) = plan {
            return Ok(p);
        }
        self.mounts
            .mount_first(id, &plan, read_only, |p| self.chown_to_root(p))
    }

    /// Drops one reference to the layer's mount; the last one unmounts it and removes `merged`.
    ///
    /// # Errors
    /// The layer's state cannot be read or the count written.
    pub fn put(&self, id: &LayerId) -> Result<()> {
        let _lock = self.layer_lock(id, LockKind::Exclusive)?;
        self.ensure_exists(id)?;
        if !self.has_lower_file(id)? {
            return Ok(());
        }
        self.mounts.release(id)
    }
}
