//! Diff, Changes and DiffSize. Natively they read only the layer's `diff` directory (and, for
//! Changes, look single paths up in the lowers); when `parent` is not the direct parent, or this
//! kernel's overlay cannot give a faithful upper, they compare the mounted trees as moby's naive
//! driver does.

use std::io::Write;
use std::path::PathBuf;

use strata_archive::{Change, ExportOptions};

use crate::error::{Error, Result};
use crate::id::LayerId;

use super::get_put::Held;
use super::Driver;

impl Driver {
    /// Whether `op` can read `id`'s own `diff` directory (else it compares mounted trees).
    /// Refuses a layer whose chain holds an incomplete layer, as mounting does: its tree (or the
    /// lowers its changes are told apart against) is partial.
    fn native(&self, op: &'static str, id: &LayerId, parent: Option<&LayerId>) -> Result<bool> {
        self.ensure_exists(id)?;
        let chain = self.lowers(id)?;
        self.refuse_incomplete(op, id, true, &chain)?;
        Ok(self.native_diff_ok() && self.is_parent(id, parent)?)
    }

    /// Mounts `id` and `parent` for a naive comparison.
    fn mount_pair(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
    ) -> Result<(Held<'_>, PathBuf, Option<PathBuf>)> {
        let mut held = Held::new(self);
        let root = held.get(id)?;
        let parent_root = match parent {
            Some(p) => Some(held.get(p)?),
            None => None,
        };
        Ok((held, root, parent_root))
    }

    fn export_options(&self) -> ExportOptions {
        ExportOptions {
            id_maps: self.id_maps.clone(),
            whiteouts: self.whiteout_format(),
        }
    }

    /// Writes the tar of the changes of `id` against `parent` to `out`.
    ///
    /// # Errors
    /// The layer does not exist, or reading or writing failed.
    pub fn diff(&self, id: &LayerId, parent: Option<&LayerId>, out: impl Write) -> Result<()> {
        let err = |source| Error::Archive {
            op: "export",
            id: id.to_string(),
            source,
        };
        if self.native("export", id, parent)? {
            return strata_archive::export(&self.layout.diff(id), out, &self.export_options())
                .map_err(err);
        }
        let (_held, root, parent_root) = self.mount_pair(id, parent)?;
        let changes = strata_archive::changes_naive(&root, parent_root.as_deref()).map_err(err)?;
        strata_archive::export_changes(&root, &changes, out, &self.export_options()).map_err(err)
    }

    /// The changes of `id` against `parent`, sorted by path.
    ///
    /// # Errors
    /// The layer does not exist, or reading failed.
    pub fn changes(&self, id: &LayerId, parent: Option<&LayerId>) -> Result<Vec<Change>> {
        let err = |source| Error::Archive {
            op: "compute changes of",
            id: id.to_string(),
            source,
        };
        if self.native("compute changes of", id, parent)? {
            let lowers = self.lower_diff_dirs(id)?;
            return strata_archive::changes(&self.layout.diff(id), &lowers, self.whiteout_format())
                .map_err(err);
        }
        let (_held, root, parent_root) = self.mount_pair(id, parent)?;
        strata_archive::changes_naive(&root, parent_root.as_deref()).map_err(err)
    }

    /// DiffSize: bytes of the changes of `id` against `parent`.
    ///
    /// # Errors
    /// The layer does not exist, or reading failed.
    pub fn diff_size(&self, id: &LayerId, parent: Option<&LayerId>) -> Result<u64> {
        let err = |source| Error::Archive {
            op: "size",
            id: id.to_string(),
            source,
        };
        if self.native("size", id, parent)? {
            return strata_archive::diff_size(&self.layout.diff(id)).map_err(err);
        }
        let (_held, root, parent_root) = self.mount_pair(id, parent)?;
        let changes = strata_archive::changes_naive(&root, parent_root.as_deref()).map_err(err)?;
        strata_archive::changes_size(&root, &changes).map_err(err)
    }
}
