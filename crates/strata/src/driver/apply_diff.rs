//! ApplyDiff: a layer tar into a layer. Natively the tar is applied into a fresh staging
//! directory that then replaces the (empty) `diff` in one rename exchange, so a tar that breaks
//! mid-stream leaves the layer as it was. Otherwise (not the direct parent, or no native diff on
//! this kernel) it is applied on the mounted layer, as moby's naive driver does.

use std::io::Read;
use std::os::unix::fs::MetadataExt;

use strata_archive::{ApplyOptions, WhiteoutFormat};

use crate::error::{Error, Result};
use crate::id::LayerId;
use crate::lock::LockKind;
use crate::staging::Staging;

use super::get_put::Held;
use super::Driver;

impl Driver {
    /// Applies an uncompressed layer tar to layer `id` whose parent is `parent`, returning the
    /// layer's size (DiffSize).
    ///
    /// # Errors
    /// The layer does not exist, the tar is corrupt or hostile, or a filesystem error.
    pub fn apply_diff(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        tar: impl Read,
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
            let root = held.get(id)?;
            let opts = ApplyOptions {
                id_maps: self.id_maps.clone(),
                whiteouts: WhiteoutFormat::Delete,
            };
            let applied = strata_archive::apply(tar, &root, &opts);
            let released = held.release();
            let stats = applied.map_err(archive_err("apply to"))?;
            released?;
            return Ok(stats.bytes);
        }
        let _home = self.home_lock(LockKind::Shared)?;
        let _lock = self.layer_lock(id, LockKind::Exclusive)?;
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
            strata_archive::apply(tar, &diff, &opts).map_err(archive_err("apply to"))?;
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
        }
        strata_archive::diff_size(&diff).map_err(archive_err("size"))
    }
}
