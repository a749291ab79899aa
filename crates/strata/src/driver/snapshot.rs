//! What an engine that performs mounts itself needs from the store (containerd's snapshotters):
//! a layer's [`MountPlan`] in its structured form, to be rendered as the engine's mount
//! description; moving a parent-less layer onto a parent (containerd's `rebase`); and a
//! quota-backed layer's usage. Never mounts.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

use crate::error::{Error, Result};
use crate::id::LayerId;
use crate::layout::LowerChain;
use crate::lock::LockKind;
use crate::mount::plan::{self, LayerMount, MountPlan, PlanError};
use crate::quota::QuotaUsage;

use super::Driver;

impl Driver {
    /// The plan for mounting `id` read-write (its `diff` as the upper) or read-only (its `diff`
    /// as the top lower), as [`MountPlan::Direct`] for a layer without parents or
    /// [`MountPlan::NewApi`] with every lower listed, nearest first, through its short
    /// `l/<link>` path. It is the plan `get` would execute, in the form that lists each
    /// directory: the caller performs the mount (with whatever API it uses) and checks any
    /// limit of its own mount path.
    ///
    /// # Errors
    /// The layer does not exist or its chain is damaged or deeper than overlayfs stacks.
    pub fn mount_plan(&self, id: &LayerId, read_only: bool) -> Result<MountPlan> {
        self.ensure_exists(id)?;
        let chain = self.lowers(id)?;
        let mut probes = self.probes.clone();
        probes.new_mount_api = true;
        let mut plan = plan::plan(
            &self.layout,
            &LayerMount {
                id,
                lowers: &chain.0,
                read_only,
                mount_label: "",
            },
            &probes,
        )
        .map_err(|e| Error::Corrupt {
            id: id.to_string(),
            what: format!("cannot mount its chain: {e}"),
        })?;
        if let MountPlan::NewApi { config, .. } = &mut plan {
            // The layer's own diff, when it is the top lower, also through its short link, so
            // that every lower sits in `l/` (short option text, one common directory).
            if read_only && config.lowers.first() == Some(&self.layout.diff(id)) {
                config.lowers[0] = self.layout.link(&self.link_of(id)?);
            }
        }
        Ok(plan)
    }

    /// Puts layer `id`, created without a parent, on top of `parent` (or, with `None`, takes
    /// its parent away again): its `lower` file and `work` directory are written as
    /// `create_read_write` with that parent would have written them, and its content stays.
    /// This is containerd's `rebase`: a layer unpacked on its own, then committed onto the
    /// chain it belongs to. The `lower` file lands (or goes) with one rename.
    ///
    /// The caller guarantees that no layer sits on `id` and that it is not mounted: their
    /// chains would not follow.
    ///
    /// # Errors
    /// A missing layer or parent, a layer that has a parent already (with `Some`), a chain too
    /// deep to mount, or a filesystem error.
    pub fn set_parent(&self, id: &LayerId, parent: Option<&LayerId>) -> Result<()> {
        let _home = self.home_lock(LockKind::Shared)?;
        let _lock = self.layer_lock(id, LockKind::Exclusive)?;
        self.ensure_exists(id)?;
        let lower_file = self.layout.lower_file(id);
        let Some(parent) = parent else {
            match std::fs::remove_file(&lower_file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove lower file", &lower_file)(e)),
            }
            tracing::debug!(%id, "took the parent away");
            return Ok(());
        };
        if parent == id {
            return Err(Error::InvalidId {
                id: id.to_string(),
                reason: "a layer cannot be its own parent",
            });
        }
        if self.has_lower_file(id)? {
            return Err(Error::Corrupt {
                id: id.to_string(),
                what: "it has a parent already and cannot be put on another".into(),
            });
        }
        let _parent_lock = self.layer_lock(parent, LockKind::Shared)?;
        self.ensure_exists(parent).map_err(|e| match e {
            Error::LayerNotFound { .. } => Error::ParentNotFound {
                id: id.to_string(),
                parent: parent.to_string(),
            },
            e => e,
        })?;
        let mut chain = vec![self.link_of(parent)?];
        chain.extend(self.lowers(parent)?.0);
        let lowers = LowerChain(chain);
        plan::check_mountable(&self.layout, id, &lowers.0, &self.probes).map_err(|e| {
            Error::ChainTooLong {
                id: id.to_string(),
                depth: lowers.len() + 1,
                limit: match e {
                    PlanError::TooManyLowers { .. } => plan::MAX_LOWERS,
                    PlanError::DataTooLong { .. } => lowers.len(),
                },
                mount_api: "this host's overlay mount",
            }
        })?;
        let work = self.layout.work(id);
        match std::fs::DirBuilder::new().mode(0o700).create(&work) {
            Ok(()) => self.chown_to_root(&work)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create directory", &work)(e)),
        }
        let tmp = self.layout.layer(id).join("lower.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(Error::io("create file", &tmp))?;
        f.write_all(lowers.encode().as_bytes())
            .map_err(Error::io("write", &tmp))?;
        f.sync_all().map_err(Error::io("sync", &tmp))?;
        std::fs::rename(&tmp, &lower_file).map_err(Error::io("rename into place", &lower_file))?;
        // As `create`: the parent of a layer is marked committed (Docker 20.10).
        let marker = self.layout.committed(parent);
        if std::fs::symlink_metadata(&marker).is_err() {
            std::fs::write(&marker, b"").map_err(Error::io("create file", &marker))?;
        }
        tracing::debug!(%id, %parent, "put the layer on a parent");
        Ok(())
    }

    /// Bytes and inodes the filesystem charges to the layer's project quota, or `None` when the
    /// layer has no quota. One `quotactl`, however large the layer.
    ///
    /// # Errors
    /// The quota cannot be read.
    pub fn quota_usage(&self, id: &LayerId) -> Result<Option<QuotaUsage>> {
        match &self.quota {
            Some(q) => q.usage(id, &self.layout.layer(id)),
            None => Ok(None),
        }
    }

    /// Whether the home's filesystem takes project quotas, and if not, why.
    pub fn quota_support(&self) -> std::result::Result<(), String> {
        match (&self.quota, &self.quota_unsupported) {
            (Some(_), _) => Ok(()),
            (None, why) => Err(why
                .clone()
                .unwrap_or_else(|| "project quotas are not available".into())),
        }
    }
}
