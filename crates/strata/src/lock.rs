//! Locks that work across threads and processes: `flock(2)` on files under
//! `<home>/.strata/locks/` (paths from [`crate::layout::Layout`]). One file per layer; `home.lock`
//! is taken shared by every operation that changes layers and exclusively by `check --repair`.
//! Lock files are never deleted, so two processes can never hold locks on two different files of
//! the same name.
//!
//! [`flock`] is the one way strata (and `strata-image`) takes an `flock`: it retries when a
//! signal interrupts the wait.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use rustix::fs::FlockOperation;

use crate::error::{Error, Result};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

/// Whether the lock excludes everyone or only exclusive holders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Readers: many at once.
    Shared,
    /// One holder.
    Exclusive,
}

/// Takes an `flock` of `kind` on `file`, waiting for it; a wait interrupted by a signal
/// (`EINTR`) is resumed.
///
/// # Errors
/// `flock(2)` failed.
pub fn flock(file: &File, kind: LockKind) -> io::Result<()> {
    let op = match kind {
        LockKind::Shared => FlockOperation::LockShared,
        LockKind::Exclusive => FlockOperation::LockExclusive,
    };
    loop {
        match rustix::fs::flock(file, op) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Takes the lock on the file at `path` (created when missing), waiting for it.
///
/// # Errors
/// The lock file cannot be opened or locked.
pub fn lock(path: &Path, kind: LockKind) -> Result<LockGuard> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(Error::io("open lock file", path))?;
    flock(&file, kind).map_err(Error::io("lock", path))?;
    Ok(LockGuard { _file: file })
}
