//! Get and Put: refcounted overlay mounts. The first Get mounts, the last Put unmounts (lazily)
//! and removes `merged`, as moby overlay2 does.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::id::LayerId;
use crate::lock::LockKind;
use crate::mount::plan::{self, LayerMount, MountPlan};
use crate::mount::{exec, refs};

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
        let (merged, _, count) = self.mount_state(id)?;
        if count > 0 {
            self.store_count(id, count + 1)?;
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
        match std::fs::DirBuilder::new().mode(0o700).create(&merged) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create directory", &merged)(e)),
        }
        self.chown_to_root(&merged)?;
        if let Err(source) = exec::mount(&plan) {
            let _ = std::fs::remove_dir(&merged);
            return Err(Error::Mount {
                id: id.to_string(),
                target: merged,
                source,
            });
        }
        if let Err(e) = self.store_count(id, 1) {
            let _ = exec::unmount(&merged);
            let _ = std::fs::remove_dir(&merged);
            return Err(e);
        }
        if !read_only {
            // As moby overlay2 (Get): overlay in a user namespace needs work/work owned by the
            // remapped root to move directories from lower to upper.
            let ww = self.layout.work(id).join("work");
            if let Err(e) = self.chown_to_root(&ww) {
                let _ = exec::unmount(&merged);
                let _ = std::fs::remove_dir(&merged);
                let _ = self.refs.store(id.as_str(), 0);
                return Err(e);
            }
        }
        tracing::debug!(%id, read_only, "mounted layer");
        Ok(merged)
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
        let (merged, mounted, count) = self.mount_state(id)?;
        if count > 1 {
            return self.store_count(id, count - 1);
        }
        if mounted {
            exec::unmount(&merged).map_err(Error::io("unmount", &merged))?;
        }
        // As moby overlay2 (Put): removing the mount point also drops copies of the mount in other
        // mount namespaces on newer kernels.
        if let Err(e) = std::fs::remove_dir(&merged) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::debug!(path = %merged.display(), "removing merged: {e}");
            }
        }
        self.store_count(id, 0)?;
        tracing::debug!(%id, "unmounted layer");
        Ok(())
    }

    /// The mount point, whether it is mounted now, and the effective reference count.
    fn mount_state(&self, id: &LayerId) -> Result<(PathBuf, bool, u64)> {
        let merged = self.layout.merged(id);
        let mounted =
            refs::is_mounted(&merged).map_err(Error::io("read mount table for", &merged))?;
        let count = self
            .refs
            .effective(id.as_str(), mounted)
            .map_err(Error::io("read mount count", self.layout.mounts()))?;
        Ok((merged, mounted, count))
    }

    fn store_count(&self, id: &LayerId, n: u64) -> Result<()> {
        self.refs
            .store(id.as_str(), n)
            .map_err(Error::io("write mount count", self.layout.mounts()))
    }
}
