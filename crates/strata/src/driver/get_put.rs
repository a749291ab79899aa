//! Get and Put: refcounted overlay mounts. The first Get mounts, the last Put unmounts (lazily)
//! and removes `merged`, as moby overlay2 does; the counting and mounting live in
//! [`crate::mount::refs`].

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::id::LayerId;
use crate::lock::LockKind;
use crate::mount::plan::{self, LayerMount, MountPlan};

use super::Driver;

/// Mounts taken with `get` for the length of one operation (a naive diff, an apply through the
/// mount): each is `put` again by [`Held::release`], which reports the first failure, or on
/// drop, which logs failures.
pub(super) struct Held<'a> {
    driver: &'a Driver,
    ids: Vec<LayerId>,
}

impl<'a> Held<'a> {
    pub(super) fn new(driver: &'a Driver) -> Held<'a> {
        Held {
            driver,
            ids: Vec::new(),
        }
    }

    /// `get`s the layer (no mount label) and holds it: its root filesystem path.
    pub(super) fn get(&mut self, id: &LayerId) -> Result<PathBuf> {
        let root = self.driver.get(id, "")?;
        self.ids.push(id.clone());
        Ok(root)
    }

    /// `put`s every layer held, in the order taken; the first failure is returned (the others
    /// are logged).
    pub(super) fn release(mut self) -> Result<()> {
        let mut first = Ok(());
        for id in std::mem::take(&mut self.ids) {
            if let Err(e) = self.driver.put(&id) {
                if first.is_ok() {
                    first = Err(e);
                } else {
                    tracing::warn!(%id, "releasing mount: {e}");
                }
            }
        }
        first
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        for id in &self.ids {
            if let Err(e) = self.driver.put(id) {
                tracing::warn!(%id, "releasing mount: {e}");
            }
        }
    }
}

impl Driver {
    /// Mounts the layer (or adds a reference to its mount) and returns the root filesystem path:
    /// `merged` for a layer with parents, its `diff` directory for a base layer.
    ///
    /// # Errors
    /// The layer does not exist, its chain cannot be mounted here, a layer of its chain is gone
    /// ([`Error::MissingLower`]) or incomplete ([`Error::Incomplete`]), or the mount failed.
    pub fn get(&self, id: &LayerId, mount_label: &str) -> Result<PathBuf> {
        let _lock = self.layer_lock(id, LockKind::Exclusive)?;
        self.ensure_exists(id)?;
        let chain = self.lowers(id)?;
        self.refuse_incomplete("mount", id, true, &chain)?;
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
            .map_err(|e| match e {
                // The kernel names only a path; say which layer is gone.
                Error::Mount { .. } => self.missing_lower(id, &chain).unwrap_or(e),
                e => e,
            })
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
