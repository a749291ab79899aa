//! A layer's mount lifecycle, in one place: reference counts that hold across threads and
//! processes and survive restarts, mounting on first use, unmounting on last, and the resets of
//! `cleanup` and `check --repair`. Every method of `Mounts` expects the caller to hold the
//! layer's lock (the driver's `get`, `put`, `remove` and `check` do).
//!
//! The count of a layer lives in [`Layout::mount_count`]. The mount table is the truth it is
//! checked against: a count for a layer that is not mounted is stale (the machine rebooted, or
//! someone unmounted it) and reads as 0; a mounted layer without a count (a home from before a
//! crash, or Docker's) reads as 1, as moby's RefCounter does when it first sees a mounted path.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::exec;
use super::plan::MountPlan;
use crate::error::{Error, Result};
use crate::id::LayerId;
use crate::layout::{self, LayerDir, Layout};

/// Reference counts of one home.
#[derive(Debug, Clone)]
pub struct Refs {
    layout: Layout,
}

impl Refs {
    /// Counts kept in the home's mount count directory ([`Layout::mounts`]).
    pub fn new(layout: Layout) -> Refs {
        Refs { layout }
    }

    /// The stored count (0 when none is stored).
    ///
    /// # Errors
    /// The count file exists but cannot be read.
    pub fn stored(&self, id: &str) -> io::Result<u64> {
        match std::fs::read_to_string(self.layout.mount_count(id)) {
            Ok(s) => Ok(layout::decode_count(&s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// The effective count given whether the layer is mounted now.
    ///
    /// # Errors
    /// The count file cannot be read.
    pub fn effective(&self, id: &str, mounted: bool) -> io::Result<u64> {
        let n = self.stored(id)?;
        Ok(match (mounted, n) {
            (false, _) => 0,
            (true, 0) => 1,
            (true, n) => n,
        })
    }

    /// Stores `n` (removing the file at 0). Written to a temporary file and renamed, so a crash
    /// never leaves a torn count.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn store(&self, id: &str, n: u64) -> io::Result<()> {
        let f = self.layout.mount_count(id);
        if n == 0 {
            return match std::fs::remove_file(&f) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r,
            };
        }
        let tmp = self.layout.mount_count_tmp(id);
        std::fs::write(&tmp, layout::encode_count(n))?;
        std::fs::rename(&tmp, &f)
    }

    /// Ids that have a stored count.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub fn list(&self) -> io::Result<Vec<String>> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(self.layout.mounts())? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                v.push(name);
            }
        }
        Ok(v)
    }
}

/// Whether something is mounted exactly at `path`.
///
/// # Errors
/// The mount table cannot be read.
pub fn is_mounted(path: &Path) -> io::Result<bool> {
    Ok(strata_sys::mountinfo::read()?
        .iter()
        .any(|m| m.mount_point == path))
}

/// The mount lifecycle of one home's layers.
#[derive(Debug, Clone)]
pub(crate) struct Mounts {
    layout: Layout,
    refs: Refs,
}

/// What the mount table and the counts disagree on, for `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MountFinding {
    /// Mounted, but no count holds it.
    Unreferenced {
        /// The layer.
        id: LayerId,
    },
    /// A count, but not mounted.
    StaleCount {
        /// The layer.
        id: LayerId,
        /// The stored count.
        stored: u64,
    },
}

impl Mounts {
    pub(crate) fn new(layout: Layout) -> Mounts {
        Mounts {
            refs: Refs::new(layout.clone()),
            layout,
        }
    }

    /// Whether the layer is mounted now.
    pub(crate) fn is_mounted(&self, id: &LayerId) -> Result<bool> {
        let merged = self.layout.merged(id);
        is_mounted(&merged).map_err(Error::io("read mount table for", &merged))
    }

    /// Takes one more reference to the layer's mount when it is mounted: its mount point.
    /// `None` when it is not mounted; then plan the mount and call [`Mounts::mount_first`].
    pub(crate) fn reuse(&self, id: &LayerId) -> Result<Option<PathBuf>> {
        let (merged, _, count) = self.state(id)?;
        if count == 0 {
            return Ok(None);
        }
        self.store(id, count + 1)?;
        Ok(Some(merged))
    }

    /// Mounts the layer per `plan` (not [`MountPlan::Direct`]) and sets its count to 1.
    /// `give_to_root` hands a directory to the container's root (the mount point, and overlay's
    /// `work/work` of a writable mount). On failure nothing stays mounted or counted.
    pub(crate) fn mount_first(
        &self,
        id: &LayerId,
        plan: &MountPlan,
        read_only: bool,
        give_to_root: impl Fn(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        let merged = self.layout.merged(id);
        match std::fs::DirBuilder::new().mode(0o700).create(&merged) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create directory", &merged)(e)),
        }
        give_to_root(&merged)?;
        if let Err(source) = exec::mount(plan) {
            remove_mount_point(&merged);
            return Err(Error::Mount {
                id: id.to_string(),
                target: merged,
                source,
            });
        }
        if let Err(e) = self.store(id, 1) {
            self.undo_mount(id, &merged, false);
            return Err(e);
        }
        if !read_only {
            // As moby overlay2 (Get): overlay in a user namespace needs work/work owned by the
            // remapped root to move directories from lower to upper.
            let ww = self.layout.layer_dir(id).overlay_work_inner();
            if let Err(e) = give_to_root(&ww) {
                self.undo_mount(id, &merged, true);
                return Err(e);
            }
        }
        tracing::debug!(%id, read_only, "mounted layer");
        Ok(merged)
    }

    /// Drops one reference; the last one unmounts and removes the mount point.
    pub(crate) fn release(&self, id: &LayerId) -> Result<()> {
        let (merged, mounted, count) = self.state(id)?;
        if count > 1 {
            return self.store(id, count - 1);
        }
        if mounted {
            exec::unmount(&merged).map_err(Error::io("unmount", &merged))?;
        }
        // As moby overlay2 (Put): removing the mount point also drops copies of the mount in other
        // mount namespaces on newer kernels.
        if let Err(e) = std::fs::remove_dir(&merged) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::debug!(path = %merged.display(), "removing merged: {e}");
            }
        }
        self.store(id, 0)?;
        tracing::debug!(%id, "unmounted layer");
        Ok(())
    }

    /// Unmounts the layer whatever its count (a layer being removed); the count stays until
    /// [`Mounts::forget`].
    pub(crate) fn detach(&self, id: &LayerId) -> Result<()> {
        if self.is_mounted(id)? {
            let merged = self.layout.merged(id);
            exec::unmount(&merged).map_err(Error::io("unmount", &merged))?;
        }
        Ok(())
    }

    /// Drops the layer's count (the layer is gone).
    pub(crate) fn forget(&self, id: &LayerId) -> Result<()> {
        self.refs
            .store(id.as_str(), 0)
            .map_err(Error::io("clear mount count", self.layout.mounts()))
    }

    /// Unmounts every mount beneath the home (deepest first) and forgets every count: the
    /// driver's cleanup. Mount points left behind and counts that cannot be removed are logged.
    pub(crate) fn unmount_all(&self) -> Result<()> {
        let home = self.layout.home();
        let table =
            strata_sys::mountinfo::read().map_err(Error::io("read mount table for", home))?;
        let mut points: Vec<_> = table
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|p| p.starts_with(home) && p != home)
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        points.dedup();
        for p in &points {
            exec::unmount(p).map_err(Error::io("unmount", p))?;
            if p.parent()
                .is_some_and(|dir| LayerDir::at(dir).merged() == *p)
            {
                remove_mount_point(p);
            }
        }
        for id in self
            .refs
            .list()
            .map_err(Error::io("read directory", self.layout.mounts()))?
        {
            if let Err(e) = self.refs.store(&id, 0) {
                tracing::warn!(layer = %id, "clearing mount count: {e}");
            }
        }
        Ok(())
    }

    /// Where the mount table and the counts of `layers` disagree.
    pub(crate) fn findings(&self, layers: &BTreeSet<LayerId>) -> Result<Vec<MountFinding>> {
        let table = strata_sys::mountinfo::read()
            .map_err(Error::io("read mount table for", self.layout.home()))?;
        let mounted: BTreeSet<PathBuf> = table.into_iter().map(|m| m.mount_point).collect();
        let mut out = Vec::new();
        for id in layers {
            let stored = self.refs.stored(id.as_str()).unwrap_or(0);
            let is_mounted = mounted.contains(&self.layout.merged(id));
            if is_mounted && stored == 0 {
                out.push(MountFinding::Unreferenced { id: id.clone() });
            } else if !is_mounted && stored > 0 {
                out.push(MountFinding::StaleCount {
                    id: id.clone(),
                    stored,
                });
            }
        }
        Ok(out)
    }

    /// Unmounts a mount nothing references (repair of [`MountFinding::Unreferenced`]).
    pub(crate) fn unmount_unreferenced(&self, id: &LayerId) -> io::Result<()> {
        let merged = self.layout.merged(id);
        exec::unmount(&merged)?;
        remove_mount_point(&merged);
        Ok(())
    }

    /// The mount point, whether it is mounted now, and the effective reference count.
    fn state(&self, id: &LayerId) -> Result<(PathBuf, bool, u64)> {
        let merged = self.layout.merged(id);
        let mounted = is_mounted(&merged).map_err(Error::io("read mount table for", &merged))?;
        let count = self
            .refs
            .effective(id.as_str(), mounted)
            .map_err(Error::io("read mount count", self.layout.mounts()))?;
        Ok((merged, mounted, count))
    }

    fn store(&self, id: &LayerId, n: u64) -> Result<()> {
        self.refs
            .store(id.as_str(), n)
            .map_err(Error::io("write mount count", self.layout.mounts()))
    }

    /// Takes back a mount whose `get` failed after mounting; failures are logged, the caller
    /// reports the error that made it undo.
    fn undo_mount(&self, id: &LayerId, merged: &Path, counted: bool) {
        if let Err(e) = exec::unmount(merged) {
            tracing::warn!(path = %merged.display(), "unmounting after a failed get: {e}");
        }
        remove_mount_point(merged);
        if counted {
            if let Err(e) = self.refs.store(id.as_str(), 0) {
                tracing::warn!(layer = %id, "clearing mount count after a failed get: {e}");
            }
        }
    }
}

/// Removes a mount point that is no longer mounted; a failure is logged.
fn remove_mount_point(merged: &Path) {
    if let Err(e) = std::fs::remove_dir(merged) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %merged.display(), "removing mount point: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_effective_trusts_mount_table() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::new(d.path().to_owned());
        std::fs::create_dir_all(layout.mounts()).unwrap();
        let r = Refs::new(layout);
        assert_eq!(r.effective("a", true).unwrap(), 1);
        r.store("a", 3).unwrap();
        assert_eq!(r.effective("a", true).unwrap(), 3);
        assert_eq!(r.effective("a", false).unwrap(), 0);
        r.store("a", 0).unwrap();
        assert_eq!(r.stored("a").unwrap(), 0);
        assert!(r.list().unwrap().is_empty());
    }
}
