//! ApplyDiff: a layer tar into a layer. Natively, into an empty layer that is neither mounted nor
//! quota-backed, the tar is applied into a fresh staging directory that then replaces the (empty)
//! `diff` in one rename exchange, so a tar that breaks mid-stream leaves the layer as it was.
//! Otherwise the tar lands in place: into `diff` (a layer that is not empty, is mounted or
//! quota-backed), or on the mounted layer as moby's naive driver does (not the direct parent, or
//! no native diff on this kernel). Such an apply runs under the layer's fill marker
//! ([`crate::fill`]): one that fails or is killed leaves the layer marked incomplete.

use std::io::Read;
use std::os::unix::fs::MetadataExt;

use strata_archive::{ApplyOptions, WhiteoutFormat};

use crate::error::{Error, Result};
use crate::fill::{self, FillGuard, FillState};
use crate::id::LayerId;
use crate::lock::LockKind;
use crate::staging::Staging;

use super::get_put::Held;
use super::Driver;

/// The fill marker an apply runs under, if any.
enum Marker {
    /// None yet (the native, all-or-nothing path needs none).
    None,
    /// Taken by this apply: finished when it succeeds.
    Owned(FillGuard),
    /// The caller's (a load): the caller finishes it.
    Borrowed,
}

impl Marker {
    fn is_none(&self) -> bool {
        matches!(self, Marker::None)
    }

    /// The apply succeeded: an owned marker is removed.
    fn finish(self) -> Result<()> {
        match self {
            Marker::Owned(g) => g.finish(),
            Marker::None | Marker::Borrowed => Ok(()),
        }
    }

    /// The apply failed: an owned marker stays (the layer is incomplete), unless the layer is
    /// gone.
    fn fail(self, driver: &Driver) {
        if let Marker::Owned(g) = self {
            if !driver.exists(g.id()) {
                if let Err(e) = g.finish() {
                    tracing::warn!("removing the marker of a removed layer: {e}");
                }
            }
        }
    }
}

impl Driver {
    /// Applies an uncompressed layer tar to layer `id` whose parent is `parent`, returning the
    /// layer's size (DiffSize).
    ///
    /// Into an empty, unmounted layer without a quota, with `parent` its direct parent, the
    /// apply is all-or-nothing. Otherwise it lands in place under the layer's fill marker: if it
    /// fails (or the process is killed) the layer keeps what was applied and is marked
    /// incomplete (see [`Driver::begin_fill`]). An apply that completes into a layer marked
    /// incomplete clears the mark: the caller has applied its content again.
    ///
    /// # Errors
    /// The layer does not exist, the tar is corrupt or hostile, or a filesystem error.
    pub fn apply_diff(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        tar: impl Read,
    ) -> Result<u64> {
        self.ensure_exists(id)?;
        // A marked layer is filled under its marker (waiting for a live filler), so that an
        // apply that completes clears it.
        let marker = match fill::state(&self.layout, id)? {
            FillState::None => Marker::None,
            FillState::InProgress | FillState::Incomplete => Marker::Owned(self.begin_fill(id)?),
        };
        self.apply(id, parent, tar, marker)
    }

    /// [`Driver::apply_diff`] into the layer `fill` marks, under that mark: the apply never
    /// takes or removes a marker of its own, and the caller finishes `fill` once the layer is
    /// complete (a load, after verifying the content's digest).
    ///
    /// # Errors
    /// As [`Driver::apply_diff`]; `fill` marks a layer of another home.
    pub fn apply_diff_filling(
        &self,
        fill: &FillGuard,
        parent: Option<&LayerId>,
        tar: impl Read,
    ) -> Result<u64> {
        if !fill.is_of(self.home()) {
            return Err(Error::InvalidOption {
                option: "fill".into(),
                reason: format!(
                    "the fill marker of layer {} belongs to another home than {}",
                    fill.id(),
                    self.home().display()
                ),
            });
        }
        self.ensure_exists(fill.id())?;
        self.apply(fill.id(), parent, tar, Marker::Borrowed)
    }

    fn apply(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        tar: impl Read,
        mut marker: Marker,
    ) -> Result<u64> {
        let archive_err = |op: &'static str| {
            move |source| Error::Archive {
                op,
                id: id.to_string(),
                source,
            }
        };
        if !self.is_parent(id, parent)? || !self.native_diff_ok() {
            let mut held = Held::new(self);
            let root = match held.get(id) {
                Ok(root) => root,
                Err(e) => {
                    marker.fail(self);
                    return Err(e);
                }
            };
            if marker.is_none() {
                marker = Marker::Owned(self.begin_fill(id)?);
            }
            let opts = ApplyOptions {
                id_maps: self.id_maps.clone(),
                whiteouts: WhiteoutFormat::Delete,
            };
            let applied = strata_archive::apply(tar, &root, &opts);
            let released = held.release();
            let stats = match applied {
                Ok(stats) => stats,
                Err(e) => {
                    marker.fail(self);
                    return Err(archive_err("apply to")(e));
                }
            };
            marker.finish()?;
            released?;
            return Ok(stats.bytes);
        }
        let mut home = self.home_lock(LockKind::Shared)?;
        let mut lock = self.layer_lock(id, LockKind::Exclusive)?;
        self.ensure_exists(id)?;
        let diff = self.layout.diff(id);
        let opts = ApplyOptions {
            id_maps: self.id_maps.clone(),
            whiteouts: self.whiteout_format(),
        };
        let empty = std::fs::read_dir(&diff)
            .map_err(Error::io("read directory", &diff))?
            .next()
            .is_none();
        let mounted = self.mounts.is_mounted(id)?;
        let has_quota = match &self.quota {
            Some(q) => q.project_id(id)?.is_some(),
            None => false,
        };
        // Staging needs an empty diff (existing content would have to be copied), no live mount
        // (its upper is the diff inode itself) and no quota (the staging directory does not
        // carry the layer's project id).
        if !empty || mounted || has_quota {
            if marker.is_none() {
                // The marker is always taken before the layer's lock (a filler applying through
                // a mount takes the lock inside `get` while holding its marker).
                drop((lock, home));
                marker = Marker::Owned(self.begin_fill(id)?);
                home = self.home_lock(LockKind::Shared)?;
                lock = self.layer_lock(id, LockKind::Exclusive)?;
                if let Err(e) = self.ensure_exists(id) {
                    marker.fail(self);
                    return Err(e);
                }
            }
            if let Err(e) = strata_archive::apply(tar, &diff, &opts) {
                drop((lock, home));
                marker.fail(self);
                return Err(archive_err("apply to")(e));
            }
            marker.finish()?;
        } else {
            let stage = Staging::new(&self.layout.staging(), &format!("apply-{id}"))?;
            // Keep diff's own mode and owner: the staging root becomes the new diff.
            let meta = std::fs::metadata(&diff).map_err(Error::io("stat", &diff))?;
            std::fs::set_permissions(stage.path(), meta.permissions())
                .map_err(Error::io("chmod", stage.path()))?;
            std::os::unix::fs::chown(stage.path(), Some(meta.uid()), Some(meta.gid()))
                .map_err(Error::io("chown", stage.path()))?;
            strata_archive::apply(tar, stage.path(), &opts).map_err(archive_err("apply to"))?;
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                stage.path(),
                rustix::fs::CWD,
                &diff,
                rustix::fs::RenameFlags::EXCHANGE,
            )
            .map_err(|e| Error::io("exchange applied tree with", &diff)(e.into()))?;
            // The staging path now holds the old, empty diff; dropping the guard removes it.
            // A layer that was marked incomplete (and empty) is now whole.
            marker.finish()?;
        }
        drop((lock, home));
        strata_archive::diff_size(&diff).map_err(archive_err("size"))
    }
}
