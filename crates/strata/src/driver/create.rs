//! Create and CreateReadWrite: a layer is built in `.strata/staging/` and renamed into the home
//! in one step, so after a crash it exists completely or not at all.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, Result};
use crate::fill;
use crate::id::{LayerId, LinkId};
use crate::layout::{LayerDir, Layout, LowerChain};
use crate::lock::LockKind;
use crate::mount::plan::{self, PlanError};
use crate::options::StorageOpts;
use crate::staging::Staging;

use super::Driver;

impl Driver {
    /// Creates a read-only-kind layer (an image layer). As moby overlay2, a `size` storage option
    /// is refused: only read-write layers take quotas.
    ///
    /// # Errors
    /// An invalid option, an existing layer, a missing parent, a parent left incomplete
    /// ([`Error::Incomplete`]), a chain too deep to mount, or a filesystem error.
    pub fn create(&self, id: &LayerId, parent: Option<&LayerId>, opts: &StorageOpts) -> Result<()> {
        if !opts.is_empty() {
            return Err(Error::StorageOptNotSupported {
                id: id.to_string(),
                reason: "size and inodes are only supported for read-write layers".into(),
            });
        }
        self.create_layer(id, parent, &StorageOpts::default())
    }

    /// Creates a read-write layer (a container layer), with a quota from `opts` or the driver's
    /// default `overlay2.size`.
    ///
    /// # Errors
    /// As [`Driver::create`]; a quota asked for where the filesystem cannot do project quotas.
    pub fn create_read_write(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        opts: &StorageOpts,
    ) -> Result<()> {
        let limits = StorageOpts {
            size: opts.size.or(self.options.size),
            inodes: opts.inodes.or(self.options.inodes),
        };
        if !limits.is_empty() && self.quota.is_none() {
            let why = self.quota_unsupported.clone().unwrap_or_default();
            return Err(Error::StorageOptNotSupported {
                id: id.to_string(),
                reason: format!(
                    "a size limit needs project quotas, which are not supported on this \
                     filesystem: {why}"
                ),
            });
        }
        self.create_layer(id, parent, &limits)
    }

    fn create_layer(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        limits: &StorageOpts,
    ) -> Result<()> {
        let _home = self.home_lock(LockKind::Shared)?;
        let _lock = self.layer_lock(id, LockKind::Exclusive)?;
        let dir = self.layout.layer(id);
        if std::fs::symlink_metadata(&dir).is_ok() {
            return Err(Error::LayerExists { id: id.to_string() });
        }
        // The parent is locked shared so it cannot be removed while its chain is copied.
        let _parent_lock = match parent {
            Some(p) if p == id => {
                return Err(Error::InvalidId {
                    id: id.to_string(),
                    reason: "a layer cannot be its own parent",
                })
            }
            Some(p) => Some(self.layer_lock(p, LockKind::Shared)?),
            None => None,
        };
        let lowers = match parent {
            None => LowerChain::default(),
            Some(p) => {
                self.ensure_exists(p).map_err(|e| match e {
                    Error::LayerNotFound { .. } => Error::ParentNotFound {
                        id: id.to_string(),
                        parent: p.to_string(),
                    },
                    e => e,
                })?;
                let mut chain = vec![self.link_of(p)?];
                chain.extend(self.lowers(p)?.0);
                LowerChain(chain)
            }
        };
        self.refuse_incomplete("create", id, false, &lowers)?;
        plan::check_mountable(&self.layout, id, &lowers.0, &self.probes).map_err(|e| {
            let (limit, mount_api) = match e {
                PlanError::TooManyLowers { .. } => (plan::MAX_LOWERS, "the kernel's overlayfs"),
                PlanError::DataTooLong { .. } => (
                    lowers.len(),
                    "legacy mount(2) within one page (this kernel lacks lowerdir+, Linux 6.8)",
                ),
            };
            Error::ChainTooLong {
                id: id.to_string(),
                depth: lowers.len() + 1,
                limit,
                mount_api,
            }
        })?;

        let stage = Staging::new(&self.layout.staging(), &format!("create-{id}"))?;
        if !limits.is_empty() {
            let quota = self
                .quota
                .as_ref()
                .ok_or_else(|| Error::StorageOptNotSupported {
                    id: id.to_string(),
                    reason: "project quotas are not supported here".into(),
                })?;
            quota.set(id, stage.path(), limits)?;
        }
        let staged = LayerDir::at(stage.path());
        mkdir(&staged.diff(), 0o755)?;
        self.chown_to_root(staged.path())?;
        self.chown_to_root(&staged.diff())?;
        let link = LinkId::generate();
        write_file(&staged.link_file(), link.as_str().as_bytes(), 0o644)?;
        if !lowers.is_empty() {
            mkdir(&staged.work(), 0o700)?;
            self.chown_to_root(&staged.work())?;
            write_file(&staged.lower_file(), lowers.encode().as_bytes(), 0o644)?;
        }
        // The short link first: dangling until the rename, which `check` repairs after a crash.
        let link_path = self.layout.link(&link);
        std::os::unix::fs::symlink(Layout::link_target(id), &link_path)
            .map_err(Error::io("create link", &link_path))?;
        if let Err(e) = stage.commit(&dir) {
            if let Err(rm) = std::fs::remove_file(&link_path) {
                tracing::warn!(path = %link_path.display(), "removing link after a failed create: {rm}");
            }
            return Err(e);
        }
        // A marker nobody holds, of a layer that did not exist (a load killed before it
        // created the layer), says nothing about this new, empty layer.
        if let Err(e) = fill::clear_stale(&self.layout, id) {
            tracing::warn!(%id, "clearing an old incomplete marker: {e}");
        }
        if let Some(p) = parent {
            // As Docker 20.10: the parent of a new layer is marked committed, and from then on
            // mounts read-only.
            let marker = self.layout.committed(p);
            if std::fs::symlink_metadata(&marker).is_err() {
                write_file(&marker, b"", 0o600)?;
            }
        }
        tracing::debug!(%id, parent = ?parent.map(|p| p.as_str()), "created layer");
        Ok(())
    }
}

fn mkdir(p: &Path, mode: u32) -> Result<()> {
    std::fs::DirBuilder::new()
        .mode(mode)
        .create(p)
        .map_err(Error::io("create directory", p))
}

fn write_file(p: &Path, data: &[u8], mode: u32) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(p)
        .map_err(Error::io("create file", p))?;
    f.write_all(data).map_err(Error::io("write", p))?;
    f.sync_all().map_err(Error::io("sync", p))
}
