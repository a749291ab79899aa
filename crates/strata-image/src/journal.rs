//! Marks the layers a load is filling, so that a layer left behind by a loader that died
//! mid-apply is recognised (and redone) instead of being reused with half its content, and so
//! that two loads of the same layer wait for each other instead of racing.
//!
//! One marker file per layer id in the journal directory, held with an exclusive `flock` while
//! the layer is being checked, created and filled, and unlinked when it is done. A marker found
//! on disk that nobody holds was left by a dead loader. This module never touches a layer.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use strata::lock::{flock, LockKind};
use strata::LayerId;

use crate::error::{Error, Result};

/// The journal directory.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
}

/// A held marker: the layer is ours until [`Mark::done`] (or drop, which leaves the marker on
/// disk so a later load redoes the layer).
#[derive(Debug)]
pub(crate) struct Mark {
    path: PathBuf,
    _file: File,
    /// The marker was on disk before this load: a previous loader died holding it.
    pub(crate) stale: bool,
}

impl Journal {
    pub(crate) fn open(dir: &Path) -> Result<Journal> {
        std::fs::create_dir_all(dir).map_err(Error::io("create load journal", dir))?;
        Ok(Journal {
            dir: dir.to_owned(),
        })
    }

    /// Takes the marker of `id`, waiting while another load holds it.
    pub(crate) fn mark(&self, id: &LayerId) -> Result<Mark> {
        let path = self.dir.join(id.as_str());
        loop {
            let existed = path.exists();
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(Error::io("open load marker", &path))?;
            flock(&file, LockKind::Exclusive).map_err(Error::io("lock load marker", &path))?;
            // The holder we waited for may have finished and unlinked the marker: then our
            // lock is on a dead inode; start over.
            let held = file
                .metadata()
                .map_err(Error::io("stat load marker", &path))?;
            match std::fs::metadata(&path) {
                Ok(m) if m.ino() == held.ino() && m.dev() == held.dev() => {
                    return Ok(Mark {
                        path,
                        _file: file,
                        stale: existed,
                    })
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat load marker", &path)(e)),
            }
        }
    }
}

impl Mark {
    /// The layer is complete (or was never ours): remove the marker, then release it.
    pub(crate) fn done(self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove load marker", &self.path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_fresh_is_not_stale_and_done_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j")).unwrap();
        let id: LayerId = "abc".parse().unwrap();
        let m = j.mark(&id).unwrap();
        assert!(!m.stale);
        m.done().unwrap();
        assert!(!dir.path().join("j/abc").exists());
    }

    #[test]
    fn mark_left_by_dead_loader_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let id: LayerId = "abc".parse().unwrap();
        drop(j.mark(&id).unwrap()); // dropped without done(): as a crash leaves it
        let m = j.mark(&id).unwrap();
        assert!(m.stale);
        m.done().unwrap();
    }

    #[test]
    fn mark_released_by_finished_load_is_not_stale_for_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let j = std::sync::Arc::new(Journal::open(dir.path()).unwrap());
        let id: LayerId = "abc".parse().unwrap();
        let first = j.mark(&id).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let j2 = j.clone();
        let id2 = id.clone();
        let t = std::thread::spawn(move || {
            let m = j2.mark(&id2).unwrap();
            tx.send(m.stale).unwrap();
            m.done().unwrap();
        });
        first.done().unwrap();
        assert!(
            !rx.recv().unwrap(),
            "a marker removed by a finished load is not stale"
        );
        t.join().unwrap();
    }
}
