//! Sizes as Docker reports them: the sum of `lstat` sizes of non-directories, each inode once.
//! Never follows a symlink and never modifies anything.

use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{self as rfs, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::apply::{open_in_root_raw, resolve_error, DIR_FLAGS};
use crate::error::{Error, Result};
use crate::export::{file_type, join, open_dir};
use crate::model::{Change, ChangeKind};
use crate::path::split_last;

#[derive(Default)]
struct Sum {
    total: u64,
    seen: HashSet<(u64, u64)>,
}

impl Sum {
    fn add(&mut self, st: &rfs::Stat) {
        if file_type(st) == FileType::Directory {
            return;
        }
        if st.st_nlink > 1 && !self.seen.insert((st.st_dev, st.st_ino)) {
            return;
        }
        self.total += u64::try_from(st.st_size).unwrap_or(0);
    }
}

/// See [`crate::diff_size`].
pub(crate) fn diff_size(dir: &Path) -> Result<u64> {
    let root = open_dir(dir)?;
    let mut s = Sum::default();
    walk(root.as_fd(), b"", &mut s)?;
    Ok(s.total)
}

fn walk(dir: BorrowedFd<'_>, rel: &[u8], s: &mut Sum) -> Result<()> {
    let mut d = rfs::Dir::read_from(dir).map_err(|e| Error::fs("read directory", rel, e))?;
    while let Some(ent) = d.read() {
        let ent = ent.map_err(|e| Error::fs("read directory", rel, e))?;
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let ft = ent.file_type();
        if ft == FileType::Directory {
            let child = join(rel, name);
            let fd = rfs::openat(dir, name, DIR_FLAGS, Mode::empty())
                .map_err(|e| Error::fs("open directory", &child, e))?;
            walk(fd.as_fd(), &child, s)?;
            continue;
        }
        let st = match rfs::statat(dir, name, rfs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(Error::fs("lstat", &join(rel, name), e)),
        };
        if ft == FileType::Unknown && file_type(&st) == FileType::Directory {
            let child = join(rel, name);
            let fd = rfs::openat(dir, name, DIR_FLAGS, Mode::empty())
                .map_err(|e| Error::fs("open directory", &child, e))?;
            walk(fd.as_fd(), &child, s)?;
            continue;
        }
        s.add(&st);
    }
    Ok(())
}

/// See [`crate::changes_size`].
pub(crate) fn changes_size(root: &Path, changes: &[Change]) -> Result<u64> {
    let rootfd = open_dir(root)?;
    let mut s = Sum::default();
    for c in changes {
        if c.kind == ChangeKind::Delete {
            continue;
        }
        let rel = crate::path::clean(c.path.as_bytes())?;
        if rel.is_empty() {
            continue;
        }
        let (parent, base) = split_last(&rel);
        let dir = match open_in_root_raw(rootfd.as_fd(), parent, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(d) => d,
            Err(Errno::NOENT) => continue,
            Err(e) => {
                return Err(resolve_error(
                    rootfd.as_fd(),
                    parent,
                    "the directory of a changed path",
                    e,
                ))
            }
        };
        match rfs::statat(&dir, base, rfs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => s.add(&st),
            // As moby ChangesSize: a path that cannot be stat'ed is skipped.
            Err(Errno::NOENT) => {}
            Err(e) => return Err(Error::fs("lstat", &rel, e)),
        }
    }
    Ok(s.total)
}
