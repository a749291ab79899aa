//! Layers being filled in a way that is not all-or-nothing, and layers such a fill left
//! incomplete.
//!
//! An apply that lands in place (into a layer that is not empty, is mounted or quota-backed, or
//! through a mount when the tar is a diff against another layer than the direct parent) and a
//! `strata load` of a layer (create, apply, verify) both write into a layer that readers can
//! already see. While they do, the layer carries a marker, [`Layout::incomplete`], held with an
//! exclusive `flock` by the filler ([`FillGuard`]); [`FillGuard::finish`] removes it. A filler
//! that fails drops its guard without finishing, and one that is killed drops it with its
//! process: the marker stays, held by nobody, and marks the layer **incomplete**. The driver
//! refuses to mount an incomplete layer or a layer built on one, and to create a layer on one;
//! `check` reports it and `check --repair` removes it.
//!
//! A marker is created and locked under a staging name and renamed into place, so it never
//! exists unlocked while its filler lives: a marker whose lock can be taken was left behind.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use crate::error::{Error, Result};
use crate::id::LayerId;
use crate::layout::Layout;
use crate::lock::{self, LockKind};

/// A held marker: layer `id` is being filled by its holder. [`FillGuard::finish`] removes the
/// marker (the layer is complete); dropping the guard without finishing leaves the marker, and
/// the layer incomplete.
#[derive(Debug)]
pub struct FillGuard {
    id: LayerId,
    path: PathBuf,
    home: PathBuf,
    _file: File,
    was_incomplete: bool,
}

/// What the marker of a layer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FillState {
    /// No marker: the layer is not being filled in place.
    None,
    /// A live filler holds the marker.
    InProgress,
    /// A marker nobody holds: a fill failed or was killed.
    Incomplete,
}

impl FillGuard {
    /// The layer being filled.
    pub fn id(&self) -> &LayerId {
        &self.id
    }

    /// The marker was on disk, held by nobody, when this guard took it: an earlier fill of the
    /// layer failed or was killed, and the layer holds whatever it left.
    pub fn was_incomplete(&self) -> bool {
        self.was_incomplete
    }

    /// Whether this guard marks a layer of the home at `home`.
    pub(crate) fn is_of(&self, home: &Path) -> bool {
        self.home == home
    }

    /// The layer is complete: removes the marker, then releases it.
    ///
    /// # Errors
    /// The marker cannot be removed (the layer then stays marked incomplete).
    pub fn finish(self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove incomplete marker", &self.path)(e)),
        }
    }
}

/// Marks layer `id` of the home at `layout` as being filled, waiting while another filler holds
/// its marker. The layer need not exist yet (a load marks it before creating it).
///
/// # Errors
/// The marker cannot be created, opened or locked.
pub fn begin(layout: &Layout, id: &LayerId) -> Result<FillGuard> {
    let path = layout.incomplete(id);
    let guard = |file, was_incomplete| FillGuard {
        id: id.clone(),
        path: path.clone(),
        home: layout.home().to_owned(),
        _file: file,
        was_incomplete,
    };
    loop {
        match File::open(&path) {
            Ok(file) => {
                lock::flock(&file, LockKind::Exclusive)
                    .map_err(Error::io("lock incomplete marker", &path))?;
                // The filler we waited for may have finished and removed the marker: our lock
                // is then on a dead inode; start over.
                if same_file(&file, &path)? {
                    return Ok(guard(file, true));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(file) = create_locked(layout, id, &path)? {
                    return Ok(guard(file, false));
                }
            }
            Err(e) => return Err(Error::io("open incomplete marker", &path)(e)),
        }
    }
}

/// Creates the marker, locked, under a staging name and renames it into place; `None` when a
/// marker appeared meanwhile.
fn create_locked(layout: &Layout, id: &LayerId, path: &Path) -> Result<Option<File>> {
    // Held shared so that `check --repair` does not take the staging file for a leftover.
    let _home = lock::lock(&layout.home_lock(), LockKind::Shared)?;
    let tmp = layout.incomplete_tmp(id, rand::random());
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(Error::io("create incomplete marker", &tmp))?;
    let renamed = (|| {
        lock::flock(&file, LockKind::Exclusive)
            .map_err(Error::io("lock incomplete marker", &tmp))?;
        file.sync_all()
            .map_err(Error::io("sync incomplete marker", &tmp))?;
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            &tmp,
            rustix::fs::CWD,
            path,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::EXIST) => Ok(false),
            Err(e) => Err(Error::io("rename incomplete marker to", path)(e.into())),
        }
    })();
    if !matches!(renamed, Ok(true)) {
        if let Err(e) = std::fs::remove_file(&tmp) {
            tracing::warn!(path = %tmp.display(), "removing unused marker: {e}");
        }
    }
    if !renamed? {
        return Ok(None);
    }
    // The marker must be on disk before the fill writes anything.
    let dir = layout.incomplete_dir();
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("sync directory", &dir))?;
    Ok(Some(file))
}

/// Whether `file` is (still) the file at `path`.
fn same_file(file: &File, path: &Path) -> Result<bool> {
    let held = file
        .metadata()
        .map_err(Error::io("stat incomplete marker", path))?;
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.ino() == held.ino() && m.dev() == held.dev()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("stat incomplete marker", path)(e)),
    }
}

/// What the marker of `id` says. Never waits.
///
/// # Errors
/// The marker exists but cannot be opened or locked.
pub(crate) fn state(layout: &Layout, id: &LayerId) -> Result<FillState> {
    let path = layout.incomplete(id);
    loop {
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FillState::None),
            Err(e) => return Err(Error::io("open incomplete marker", &path)(e)),
        };
        match try_lock(&file) {
            Ok(false) => return Ok(FillState::InProgress),
            // Locked by us for a moment: a marker nobody held, unless its filler removed it
            // just now (then look again).
            Ok(true) if same_file(&file, &path)? => return Ok(FillState::Incomplete),
            Ok(true) => continue,
            Err(e) => return Err(Error::io("lock incomplete marker", &path)(e)),
        }
    }
}

/// Takes (`true`) or fails to take (`false`: someone holds it) an exclusive lock without waiting.
fn try_lock(file: &File) -> io::Result<bool> {
    loop {
        match rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The ids that have a marker (held or not), sorted; names that are not layer ids are skipped.
///
/// # Errors
/// The marker directory cannot be read.
pub(crate) fn marked(layout: &Layout) -> Result<Vec<LayerId>> {
    let dir = layout.incomplete_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read directory", &dir)(e)),
    };
    let mut v = Vec::new();
    for e in entries {
        let e = e.map_err(Error::io("read directory", &dir))?;
        if let Some(id) = e.file_name().to_str().and_then(|n| n.parse().ok()) {
            v.push(id);
        }
    }
    v.sort();
    Ok(v)
}

/// Removes the marker of `id` when nobody holds it (the layer is gone or repaired). A held
/// marker belongs to a live filler and stays.
///
/// # Errors
/// The marker cannot be opened, locked or removed.
pub(crate) fn clear_stale(layout: &Layout, id: &LayerId) -> Result<bool> {
    let path = layout.incomplete(id);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("open incomplete marker", &path)(e)),
    };
    if !try_lock(&file).map_err(Error::io("lock incomplete marker", &path))?
        || !same_file(&file, &path)?
    {
        return Ok(false);
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("remove incomplete marker", &path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> (tempfile::TempDir, Layout) {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::new(d.path().to_owned());
        for dir in [l.locks(), l.staging(), l.incomplete_dir()] {
            std::fs::create_dir_all(dir).unwrap();
        }
        (d, l)
    }

    #[test]
    fn fill_states_follow_the_guard() {
        let (_d, l) = layout();
        let id: LayerId = "abc".parse().unwrap();
        assert_eq!(state(&l, &id).unwrap(), FillState::None);
        let g = begin(&l, &id).unwrap();
        assert!(!g.was_incomplete());
        assert_eq!(state(&l, &id).unwrap(), FillState::InProgress);
        assert!(!clear_stale(&l, &id).unwrap(), "a held marker stays");
        drop(g); // a failed or killed fill
        assert_eq!(state(&l, &id).unwrap(), FillState::Incomplete);
        assert_eq!(marked(&l).unwrap(), vec![id.clone()]);
        let g = begin(&l, &id).unwrap();
        assert!(g.was_incomplete());
        g.finish().unwrap();
        assert_eq!(state(&l, &id).unwrap(), FillState::None);
        assert!(marked(&l).unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(l.staging()).unwrap().count(),
            0,
            "no staging file left"
        );
    }

    #[test]
    fn begin_waits_for_a_live_filler_and_a_finished_one_is_not_incomplete() {
        let (_d, l) = layout();
        let l = std::sync::Arc::new(l);
        let id: LayerId = "abc".parse().unwrap();
        let first = begin(&l, &id).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (l2, id2) = (l.clone(), id.clone());
        let t = std::thread::spawn(move || {
            let g = begin(&l2, &id2).unwrap();
            tx.send(g.was_incomplete()).unwrap();
            g.finish().unwrap();
        });
        first.finish().unwrap();
        assert!(!rx.recv().unwrap());
        t.join().unwrap();
        assert_eq!(state(&l, &id).unwrap(), FillState::None);
    }

    /// Whether some process waits for a `flock` on the file with inode `ino` (a `->` line of
    /// /proc/locks).
    fn someone_waits_for(ino: u64) -> bool {
        std::fs::read_to_string("/proc/locks")
            .unwrap()
            .lines()
            .any(|l| l.contains("->") && l.contains(&format!(":{ino} ")))
    }

    #[test]
    fn begin_that_waited_on_a_marker_removed_meanwhile_takes_a_fresh_one() {
        let (_d, l) = layout();
        let l = std::sync::Arc::new(l);
        let id: LayerId = "abc".parse().unwrap();
        let first = begin(&l, &id).unwrap();
        let ino = std::fs::metadata(l.incomplete(&id)).unwrap().ino();
        let (l2, id2) = (l.clone(), id.clone());
        let t = std::thread::spawn(move || {
            let g = begin(&l2, &id2).unwrap();
            let held = std::fs::metadata(l2.incomplete(&id2)).map(|m| m.ino());
            (g.was_incomplete(), held.ok(), g)
        });
        // The second filler is blocked on the first one's marker: the first finishes, so the
        // lock it then gets is on a removed file.
        while !someone_waits_for(ino) {
            assert!(!t.is_finished(), "the second begin did not wait");
            std::thread::yield_now();
        }
        first.finish().unwrap();
        let (was_incomplete, on_disk, g) = t.join().unwrap();
        assert!(!was_incomplete, "a finished fill is not an incomplete one");
        assert!(on_disk.is_some(), "the second filler's marker is on disk");
        assert_eq!(state(&l, &id).unwrap(), FillState::InProgress);
        g.finish().unwrap();
        assert_eq!(state(&l, &id).unwrap(), FillState::None);
    }

    #[test]
    fn begin_that_waited_on_a_marker_replaced_meanwhile_waits_for_the_new_one() {
        let (_d, l) = layout();
        let l = std::sync::Arc::new(l);
        let id: LayerId = "abc".parse().unwrap();
        let first = begin(&l, &id).unwrap();
        let old_ino = std::fs::metadata(l.incomplete(&id)).unwrap().ino();
        let (l2, id2) = (l.clone(), id.clone());
        let t = std::thread::spawn(move || {
            let g = begin(&l2, &id2).unwrap();
            (g.was_incomplete(), g)
        });
        while !someone_waits_for(old_ino) {
            assert!(!t.is_finished(), "the second begin did not wait");
            std::thread::yield_now();
        }
        // The first filler's marker is gone and a third filler's is in its place before the
        // first lets go (the moment between a `finish`'s unlink and its unlock).
        std::fs::remove_file(l.incomplete(&id)).unwrap();
        let third = begin(&l, &id).unwrap();
        let new_ino = std::fs::metadata(l.incomplete(&id)).unwrap().ino();
        assert_ne!(new_ino, old_ino);
        drop(first);
        // The second filler's lock is on the removed file: it must wait for the third.
        while !someone_waits_for(new_ino) {
            assert!(
                !t.is_finished(),
                "the second filler went ahead while the third holds the marker"
            );
            std::thread::yield_now();
        }
        third.finish().unwrap();
        let (was_incomplete, g) = t.join().unwrap();
        assert!(!was_incomplete);
        g.finish().unwrap();
        assert_eq!(state(&l, &id).unwrap(), FillState::None);
    }

    #[test]
    fn finish_of_a_marker_removed_by_hand_succeeds() {
        let (_d, l) = layout();
        let id: LayerId = "abc".parse().unwrap();
        let g = begin(&l, &id).unwrap();
        std::fs::remove_file(l.incomplete(&id)).unwrap();
        g.finish().unwrap();
        assert_eq!(state(&l, &id).unwrap(), FillState::None);
    }

    #[test]
    fn clear_stale_removes_a_marker_nobody_holds() {
        let (_d, l) = layout();
        let id: LayerId = "abc".parse().unwrap();
        drop(begin(&l, &id).unwrap());
        assert!(clear_stale(&l, &id).unwrap());
        assert_eq!(state(&l, &id).unwrap(), FillState::None);
    }
}
