//! Reading extended attributes of files met while walking a tree: by fd when the object is
//! open, else through the parent dirfd's `/proc/self/fd` link plus one (never followed)
//! component. Owns the filtering of overlay's private attributes. Never writes attributes.

use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::fs as rfs;
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Overlay's own attributes, never exported or applied.
pub(crate) fn is_overlay(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// The `/proc/self/fd/N/base` path of `base` inside the open directory `dir`.
pub(crate) fn proc_path(dir: BorrowedFd<'_>, base: &[u8]) -> Vec<u8> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(base);
    p
}

enum Target<'a> {
    Fd(BorrowedFd<'a>),
    Path(&'a [u8]),
}

fn list(t: &Target<'_>, buf: &mut [u8]) -> rustix::io::Result<usize> {
    match t {
        Target::Fd(fd) => rfs::flistxattr(*fd, buf),
        Target::Path(p) => rfs::llistxattr(*p, buf),
    }
}

fn get(t: &Target<'_>, name: &[u8], buf: &mut [u8]) -> rustix::io::Result<usize> {
    match t {
        Target::Fd(fd) => rfs::fgetxattr(*fd, name, buf),
        Target::Path(p) => rfs::lgetxattr(*p, name, buf),
    }
}

fn read_all(t: Target<'_>, shown: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut names = vec![0u8; 1024];
    let n = loop {
        match list(&t, &mut names) {
            Ok(n) => break n,
            Err(Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(Error::fs("list xattrs of", shown, e)),
        }
        if names.len() > 1 << 20 {
            return Err(Error::fs("list xattrs of", shown, Errno::RANGE));
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if is_overlay(name) {
            continue;
        }
        let mut val = vec![0u8; 256];
        let len = loop {
            match get(&t, name, &mut val) {
                Ok(l) => break Some(l),
                Err(Errno::RANGE) if val.len() < 1 << 20 => val.resize(val.len() * 4, 0),
                Err(Errno::NODATA) => break None,
                Err(e) => return Err(Error::fs("get xattr of", shown, e)),
            }
        };
        if let Some(len) = len {
            val.truncate(len);
            out.push((name.to_vec(), val));
        }
    }
    out.sort();
    Ok(out)
}

/// Sorted non-overlay xattrs of an open file or directory.
pub(crate) fn read_fd(fd: BorrowedFd<'_>, shown: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    read_all(Target::Fd(fd), shown)
}

/// Sorted non-overlay xattrs of `base` inside `dir`, not following it.
pub(crate) fn read_at(
    dir: BorrowedFd<'_>,
    base: &[u8],
    shown: &[u8],
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let p = proc_path(dir, base);
    read_all(Target::Path(&p), shown)
}

/// True when the open directory carries `name` = `y` (overlay's opaque marker).
pub(crate) fn is_opaque(fd: BorrowedFd<'_>, name: &str, shown: &[u8]) -> Result<bool> {
    let mut v = [0u8; 4];
    match rfs::fgetxattr(fd, name, &mut v) {
        Ok(1) => Ok(v[0] == b'y'),
        Ok(_) | Err(Errno::NODATA) | Err(Errno::NOTSUP) | Err(Errno::RANGE) => Ok(false),
        Err(e) => Err(Error::fs("get opaque xattr of", shown, e)),
    }
}
