//! Staging directories: work happens in `<home>/.strata/staging/<name>.<random>` and lands with
//! one rename. Dropping an uncommitted [`Staging`] removes it; a crash leaves it for
//! `check --repair`.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A staging directory.
#[derive(Debug)]
pub struct Staging {
    path: PathBuf,
    done: bool,
}

impl Staging {
    /// Creates a fresh staging directory in `dir`.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn new(dir: &Path, name: &str) -> Result<Staging> {
        use rand::Rng;
        let suffix: u64 = rand::thread_rng().gen();
        let path = dir.join(format!("{name}.{suffix:016x}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(Error::io("create staging directory", &path))?;
        Ok(Staging { path, done: false })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames it to `dest`, which must not exist.
    ///
    /// # Errors
    /// The rename failed (the staging directory is then removed on drop).
    pub fn commit(mut self, dest: &Path) -> Result<()> {
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &self.path,
            rustix::fs::CWD,
            dest,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| Error::io("rename staging directory to", dest)(e.into()))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = std::fs::remove_dir_all(&self.path) {
                tracing::warn!(path = %self.path.display(), "removing staging directory: {e}");
            }
        }
    }
}
