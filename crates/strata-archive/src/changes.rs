//! Changes between two views of an image, with `docker diff` semantics.
//!
//! The semantics are moby's whole-tree comparison (`archive.ChangesDirs`, which the seed
//! driver's `Changes` always uses): a path present only in the new view is Add (with all its
//! descendants), only in the old one Delete (its descendants are not listed), in both Modify
//! when mode, owner, rdev, extended attributes, or (for non-directories) size or mtime differ;
//! a directory with any change beneath it is Modify; the root is never listed.
//! Differs from moby, which compares only `security.capability` among the xattrs: an
//! xattr-only change would otherwise be missing from a naive diff. Overlay's own attributes
//! (`trusted.overlay.*`, `user.overlay.*`) never count. Also unlike moby, a symlink whose
//! target changed is modified even when its stat is equal. As in moby, a regular file whose
//! content changed while mode, size and mtime stayed equal is not seen.
//!
//! [`changes_naive`] computes exactly that by walking both trees. [`changes`] computes the same
//! result by walking only the upper directory of a layer and looking its paths up in the lower
//! layers (whiteouts and opaque directories of the lowers respected); only an opaque directory
//! of the upper makes it list the lower directory it hides, since those entries are its deletes.
//! Differs from moby `OverlayChanges` (which reports every copied-up file as modified and a
//! re-created directory as deleted): the fast result is equal to the whole-tree one.
//! Never modifies anything.

use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, FileType, Mode, Stat};
use rustix::io::Errno;

use crate::apply::DIR_FLAGS;
use crate::error::{lossy, Error, Result};
use crate::export::{file_type, is_whiteout, join, open_dir, sorted};
use crate::model::{Change, ChangeKind, WhiteoutFormat};
use crate::xattr;

fn push(out: &mut Vec<Change>, rel: &[u8], kind: ChangeKind) {
    let mut path = String::from("/");
    path.push_str(&lossy(rel));
    out.push(Change { path, kind });
}

fn lstat(dir: BorrowedFd<'_>, name: &[u8], shown: &[u8]) -> Result<Option<Stat>> {
    match rfs::statat(dir, name, rfs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(Error::fs("lstat", shown, e)),
    }
}

fn open_child(dir: BorrowedFd<'_>, name: &[u8], shown: &[u8]) -> Result<OwnedFd> {
    rfs::openat(dir, name, DIR_FLAGS, Mode::empty())
        .map_err(|e| Error::fs("open directory", shown, e))
}

/// As moby `sameFsTimeSpec`: equal seconds, and equal nanoseconds unless either is zero.
fn same_time(a: &Stat, b: &Stat) -> bool {
    a.st_mtime == b.st_mtime
        && (a.st_mtime_nsec == b.st_mtime_nsec || a.st_mtime_nsec == 0 || b.st_mtime_nsec == 0)
}

/// As moby `statDifferent`: size and mtime are not compared for directories.
fn stat_different(old: &Stat, new: &Stat) -> bool {
    old.st_mode != new.st_mode
        || old.st_uid != new.st_uid
        || old.st_gid != new.st_gid
        || old.st_rdev != new.st_rdev
        || (file_type(old) != FileType::Directory
            && (!same_time(old, new) || old.st_size != new.st_size))
}

type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Extended attributes that count for a change: all but overlay's own.
fn xattrs(dir: BorrowedFd<'_>, name: &[u8], shown: &[u8]) -> Result<Xattrs> {
    xattr::read_at(dir, name, shown)
}

/// Whether `new` (in `ndir`) differs from `old` (in `odir`).
fn modified(
    odir: BorrowedFd<'_>,
    old: &Stat,
    ndir: BorrowedFd<'_>,
    new: &Stat,
    name: &[u8],
    shown: &[u8],
) -> Result<bool> {
    if stat_different(old, new) || xattrs(odir, name, shown)? != xattrs(ndir, name, shown)? {
        return Ok(true);
    }
    if file_type(new) == FileType::Symlink {
        // Differs from moby: a symlink re-pointed with an equal stat (a rename keeps the
        // mtime, equal-length targets keep the size) is still a change.
        let target = |dir| {
            rfs::readlinkat(dir, name, Vec::new()).map_err(|e| Error::fs("readlink", shown, e))
        };
        return Ok(target(odir)? != target(ndir)?);
    }
    Ok(false)
}

/// See [`crate::changes_naive`].
pub(crate) fn changes_naive(new: &Path, old: Option<&Path>) -> Result<Vec<Change>> {
    let n = open_dir(new)?;
    let o = old.map(open_dir).transpose()?;
    let mut out = Vec::new();
    naive_dir(n.as_fd(), o.as_ref().map(AsFd::as_fd), b"", &mut out)?;
    out.sort();
    Ok(out)
}

fn naive_dir(
    new: BorrowedFd<'_>,
    old: Option<BorrowedFd<'_>>,
    rel: &[u8],
    out: &mut Vec<Change>,
) -> Result<bool> {
    let names = sorted(new, rel)?;
    let mut old_names: HashSet<Vec<u8>> = match old {
        Some(o) => crate::apply::list(o, rel)?.into_iter().collect(),
        None => HashSet::new(),
    };
    let mut any = false;
    for name in names {
        let child = join(rel, &name);
        let Some(nst) = lstat(new, &name, &child)? else {
            continue;
        };
        let ost = match old {
            Some(o) if old_names.remove(&name) => lstat(o, &name, &child)?,
            _ => None,
        };
        let mut reported = false;
        match (&ost, old) {
            (Some(ost), Some(o)) => {
                if modified(o, ost, new, &nst, &name, &child)? {
                    push(out, &child, ChangeKind::Modify);
                    reported = true;
                }
            }
            _ => {
                push(out, &child, ChangeKind::Add);
                reported = true;
            }
        }
        any |= reported;
        if file_type(&nst) == FileType::Directory {
            let nfd = open_child(new, &name, &child)?;
            let ofd = match (&ost, old) {
                (Some(ost), Some(o)) if file_type(ost) == FileType::Directory => {
                    Some(open_child(o, &name, &child)?)
                }
                _ => None,
            };
            if naive_dir(nfd.as_fd(), ofd.as_ref().map(AsFd::as_fd), &child, out)? {
                any = true;
                if !reported {
                    push(out, &child, ChangeKind::Modify);
                }
            }
        }
    }
    for gone in old_names {
        push(out, &join(rel, &gone), ChangeKind::Delete);
        any = true;
    }
    Ok(any)
}

/// See [`crate::changes`].
pub(crate) fn changes(
    upper: &Path,
    lowers: &[PathBuf],
    fmt: WhiteoutFormat,
) -> Result<Vec<Change>> {
    let xname = fmt.opaque_xattr();
    let up = open_dir(upper)?;
    let mut old = Vec::new();
    for l in lowers {
        let fd = open_dir(l)?;
        let opaque = xattr::is_opaque(fd.as_fd(), xname, b"")?;
        old.push(fd);
        if opaque {
            break;
        }
    }
    let incl = !xattr::is_opaque(up.as_fd(), xname, b"")?;
    let mut w = FastWalk {
        xname,
        out: Vec::new(),
    };
    w.dir(up.as_fd(), b"", &old, incl)?;
    let mut out = w.out;
    out.sort();
    Ok(out)
}

struct FastWalk {
    xname: &'static str,
    out: Vec<Change>,
}

impl FastWalk {
    /// The topmost entry `name` among the lower directories `old` (None if absent or whited
    /// out): its layer position and stat.
    fn lookup(&self, old: &[OwnedFd], name: &[u8], shown: &[u8]) -> Result<Option<(usize, Stat)>> {
        for (i, l) in old.iter().enumerate() {
            if let Some(st) = lstat(l.as_fd(), name, shown)? {
                return Ok(if is_whiteout(&st) {
                    None
                } else {
                    Some((i, st))
                });
            }
        }
        Ok(None)
    }

    /// The lower directories that make up the old view of directory `name`, found first in
    /// `old[from]`: down the stack while it stays a directory, through the first opaque one.
    fn lower_dirs(
        &self,
        old: &[OwnedFd],
        from: usize,
        name: &[u8],
        shown: &[u8],
    ) -> Result<Vec<OwnedFd>> {
        let mut dirs = Vec::new();
        for l in &old[from..] {
            let Some(st) = lstat(l.as_fd(), name, shown)? else {
                continue;
            };
            if file_type(&st) != FileType::Directory {
                break;
            }
            let fd = open_child(l.as_fd(), name, shown)?;
            let opaque = xattr::is_opaque(fd.as_fd(), self.xname, shown)?;
            dirs.push(fd);
            if opaque {
                break;
            }
        }
        Ok(dirs)
    }

    /// Walks upper directory `up` (path `rel`) whose old view is `old`; `incl` says whether the
    /// new view still shows the old entries the upper does not override. Returns whether
    /// anything changed beneath it.
    fn dir(&mut self, up: BorrowedFd<'_>, rel: &[u8], old: &[OwnedFd], incl: bool) -> Result<bool> {
        let names = sorted(up, rel)?;
        let mut any = false;
        for name in &names {
            let child = join(rel, name);
            let Some(nst) = lstat(up, name, &child)? else {
                continue;
            };
            let found = self.lookup(old, name, &child)?;
            if is_whiteout(&nst) {
                if found.is_some() {
                    push(&mut self.out, &child, ChangeKind::Delete);
                    any = true;
                }
                continue;
            }
            let mut reported = false;
            match &found {
                Some((i, ost)) => {
                    if modified(old[*i].as_fd(), ost, up, &nst, name, &child)? {
                        push(&mut self.out, &child, ChangeKind::Modify);
                        reported = true;
                    }
                }
                None => {
                    push(&mut self.out, &child, ChangeKind::Add);
                    reported = true;
                }
            }
            any |= reported;
            if file_type(&nst) == FileType::Directory {
                let cfd = open_child(up, name, &child)?;
                let child_old = match &found {
                    Some((i, ost)) if file_type(ost) == FileType::Directory => {
                        self.lower_dirs(old, *i, name, &child)?
                    }
                    _ => Vec::new(),
                };
                let child_incl = incl && !xattr::is_opaque(cfd.as_fd(), self.xname, &child)?;
                if self.dir(cfd.as_fd(), &child, &child_old, child_incl)? {
                    any = true;
                    if !reported {
                        push(&mut self.out, &child, ChangeKind::Modify);
                    }
                }
            }
        }
        if !incl && !old.is_empty() {
            // Opaque here: every old entry the upper does not have is deleted.
            let present: HashSet<&[u8]> = names.iter().map(Vec::as_slice).collect();
            let mut seen: HashSet<Vec<u8>> = HashSet::new();
            for l in old {
                for name in crate::apply::list(l.as_fd(), rel)? {
                    if present.contains(name.as_slice()) || seen.contains(&name) {
                        continue;
                    }
                    let child = join(rel, &name);
                    let st = lstat(l.as_fd(), &name, &child)?;
                    seen.insert(name.clone());
                    if st.as_ref().is_some_and(|s| !is_whiteout(s)) {
                        push(&mut self.out, &child, ChangeKind::Delete);
                        any = true;
                    }
                }
            }
        }
        Ok(any)
    }
}
