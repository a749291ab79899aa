//! Remove: the layer directory is renamed into staging in one step (gone for every reader), then
//! its short link and the staged tree are deleted. Idempotent; never follows a path out of the
//! home (ids are single path components, and deletion never follows symlinks).

use crate::error::{Error, Result};
use crate::fill;
use crate::id::LayerId;
use crate::lock::LockKind;

use super::Driver;

impl Driver {
    /// Removes a layer. Removing a layer that does not exist succeeds.
    ///
    /// # Errors
    /// A filesystem error; the layer is then either intact or gone, never half removed.
    pub fn remove(&self, id: &LayerId) -> Result<()> {
        let _home = self.home_lock(LockKind::Shared)?;
        self.remove_locked(id)
    }

    /// Remove, with the home lock already held by the caller.
    pub(super) fn remove_locked(&self, id: &LayerId) -> Result<()> {
        let _lock = self.layer_lock(id, LockKind::Exclusive)?;
        let dir = self.layout.layer(id);
        let meta = match std::fs::symlink_metadata(&dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.mounts.forget(id)?;
                fill::clear_stale(&self.layout, id)?;
                return Ok(());
            }
            Err(e) => return Err(Error::io("stat layer", &dir)(e)),
        };
        if meta.is_dir() {
            // As moby (EnsureRemoveAll): a mounted layer is unmounted first.
            self.mounts.detach(id)?;
        }
        let link = if meta.is_dir() {
            self.link_of(id).ok()
        } else {
            None
        };
        let trash = self
            .layout
            .staging()
            .join(format!("remove-{id}.{:016x}", rand::random::<u64>()));
        std::fs::rename(&dir, &trash).map_err(Error::io("move layer to staging", &dir))?;
        // Released once the layer is gone for every reader, so a failed rename never leaves a
        // layer without its quota; a failed release leaves a record `check --repair` releases.
        let released = match &self.quota {
            Some(q) if meta.is_dir() => q.release(id, &trash),
            _ => Ok(()),
        };
        if let Some(link) = link {
            // Only a link that points at this layer is removed.
            if self.layer_of_link(&link).as_ref() == Some(id)
                || std::fs::metadata(self.layout.link(&link)).is_err()
            {
                let p = self.layout.link(&link);
                if let Err(e) = std::fs::remove_file(&p) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(path = %p.display(), "removing link: {e}");
                    }
                }
            }
        }
        self.mounts.forget(id)?;
        // std's remove_dir_all removes symlinks without following them.
        let removed = if std::fs::symlink_metadata(&trash)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            std::fs::remove_dir_all(&trash)
        } else {
            std::fs::remove_file(&trash)
        };
        removed.map_err(Error::io("delete removed layer", &trash))?;
        // An incomplete layer's marker goes with it; a live filler's stays (its fill fails).
        if let Err(e) = fill::clear_stale(&self.layout, id) {
            tracing::warn!(%id, "clearing the incomplete marker of a removed layer: {e}");
        }
        released?;
        tracing::debug!(%id, "removed layer");
        Ok(())
    }
}
