//! Locks that work across threads and processes: `flock(2)` on files under
//! `<home>/.strata/locks/`. One file per layer; `home.lock` is taken shared by every operation that
//! changes layers and exclusively by `check --repair`. Lock files are never deleted, so two
//! processes can never hold locks on two different files of the same name.

use std::fs::{File, OpenOptions};
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

/// Takes the lock named `name` in `dir`, waiting for it.
///
/// # Errors
/// The lock file cannot be opened or locked.
pub fn lock(dir: &Path, name: &str, kind: LockKind) -> Result<LockGuard> {
    let path = dir.join(format!("{name}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io("open lock file", &path))?;
    let op = match kind {
        LockKind::Shared => FlockOperation::LockShared,
        LockKind::Exclusive => FlockOperation::LockExclusive,
    };
    loop {
        match rustix::fs::flock(&file, op) {
            Ok(()) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::io("lock", &path)(e.into())),
        }
    }
    Ok(LockGuard { _file: file })
}
