//! One tar entry → one filesystem object inside the current directory of [`super::dirs::Dirs`]:
//! regular (and sparse) files, directories, symlinks, hardlinks, devices and fifos, with owner,
//! xattrs, mode and times applied in moby's order (chown, xattrs, chmod, times). Never touches a
//! path outside the current directory except a hardlink target, which is resolved in the root.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;

use rustix::fs::{self as rfs, Mode, OFlags, Timestamps};
use rustix::io::Errno;

use super::{open_in_root, times_of, Applier, DIR_FLAGS};
use crate::error::{lossy, Error, Result};
use crate::path::{self, split_last};
use crate::tar::reader::Reader;
use crate::tar::{Entry, Kind};

type Ids = (rfs::Uid, rfs::Gid);

/// Xattrs a tar may not set: overlay's own, which would change how the layer is merged.
pub(crate) fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// As moby's `userns.RunningInUserNS`: the uid map is not the whole identity range.
fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| {
        let f: Vec<&str> = m.split_whitespace().collect();
        f != ["0", "0", "4294967295"]
    })
}

/// As moby `createTarFile`: ENOTSUP and EPERM are ignored (not every filesystem takes them).
fn xattr_result(r: rustix::io::Result<()>, rel: &[u8]) -> Result<()> {
    match r {
        Ok(()) | Err(Errno::NOTSUP) | Err(Errno::PERM) => Ok(()),
        Err(e) => Err(Error::fs("setxattr", rel, e)),
    }
}

fn set_xattrs_fd(fd: BorrowedFd<'_>, e: &Entry, rel: &[u8]) -> Result<()> {
    for (k, v) in &e.xattrs {
        if is_overlay_xattr(k) {
            continue;
        }
        xattr_result(
            rfs::fsetxattr(fd, k.as_slice(), v, rfs::XattrFlags::empty()),
            rel,
        )?;
    }
    Ok(())
}

/// Xattrs of an object we cannot open (symlink, device, fifo): through the dirfd's
/// `/proc/self/fd` link plus one component, which `lsetxattr` does not follow.
/// Owner, xattrs, mode (`chmod`; never for a symlink) and times of the entry named `base` in
/// `dir`, never following a symlink. `have` is the inode's current owner and mode when known:
/// a chown or chmod that would change nothing is then skipped (a chown clears capabilities).
fn metadata_at(
    dir: BorrowedFd<'_>,
    base: &[u8],
    e: &Entry,
    rel: &[u8],
    ids: Ids,
    have: Option<(u32, u32, u32)>,
    chmod: bool,
) -> Result<()> {
    let mode = e.mode & 0o7777;
    if have.is_none_or(|(uid, gid, _)| (uid, gid) != (ids.0.as_raw(), ids.1.as_raw())) {
        rfs::chownat(
            dir,
            base,
            Some(ids.0),
            Some(ids.1),
            rfs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|err| Error::fs("chown", rel, err))?;
    }
    set_xattrs_at(dir, base, e, rel)?;
    if chmod && have.is_none_or(|(_, _, m)| m != mode) {
        rfs::chmodat(dir, base, Mode::from_raw_mode(mode), rfs::AtFlags::empty())
            .map_err(|err| Error::fs("chmod", rel, err))?;
    }
    rfs::utimensat(
        dir,
        base,
        &times_of(e.mtime, e.atime),
        rfs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|err| Error::fs("set times of", rel, err))
}

fn set_xattrs_at(dir: BorrowedFd<'_>, base: &[u8], e: &Entry, rel: &[u8]) -> Result<()> {
    if e.xattrs.iter().all(|(k, _)| is_overlay_xattr(k)) {
        return Ok(());
    }
    let mut p = format!("/proc/self/fd/{}/", std::os::fd::AsRawFd::as_raw_fd(&dir)).into_bytes();
    p.extend_from_slice(base);
    for (k, v) in &e.xattrs {
        if is_overlay_xattr(k) {
            continue;
        }
        xattr_result(
            rfs::lsetxattr(p.as_slice(), k.as_slice(), v, rfs::XattrFlags::empty()),
            rel,
        )?;
    }
    Ok(())
}

impl Applier<'_> {
    /// Owner, xattrs and mode of an entry this run just created in the current directory.
    ///
    /// Differs from GNU tar and moby, which always `chown` and `chmod`: a fresh inode already
    /// has our uid, the directory's creation gid and the requested mode minus the umask (when
    /// no default ACL applies), so those calls, each a journalled inode update, are skipped
    /// when they would change nothing.
    fn fresh_metadata(
        &self,
        fd: BorrowedFd<'_>,
        e: &Entry,
        rel: &[u8],
        ids: Ids,
        is_dir: bool,
    ) -> Result<()> {
        let info = self.dirs.cur_info();
        let chown = (ids.0.as_raw(), ids.1.as_raw()) != (self.euid, info.new_gid);
        if chown {
            rfs::fchown(fd, Some(ids.0), Some(ids.1))
                .map_err(|err| Error::fs("chown", rel, err))?;
        }
        set_xattrs_fd(fd, e, rel)?;
        let mode = e.mode & 0o7777;
        // A new directory inherits S_ISGID from a setgid parent.
        let inherited = if is_dir && info.setgid { 0o2000 } else { 0 };
        let as_created = self
            .umask
            .filter(|_| info.plain)
            .map(|u| (mode & 0o777 & !u) | inherited);
        if as_created != Some(mode) || (chown && mode & 0o7000 != 0) {
            rfs::fchmod(fd, Mode::from_raw_mode(mode))
                .map_err(|err| Error::fs("chmod", rel, err))?;
        }
        Ok(())
    }

    /// Creates a regular file and streams its data; returns the bytes written.
    pub(super) fn regular<R: Read>(
        &mut self,
        r: &mut Reader<R>,
        e: &Entry,
        rel: &[u8],
        parent: &[u8],
        base: &[u8],
        ids: Ids,
    ) -> Result<u64> {
        let fd = self.create(parent, base, rel, "create", |dir| {
            rfs::openat(
                dir,
                base,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(e.mode & 0o777),
            )
        })?;
        let mut file = std::fs::File::from(fd);
        let mut written = 0u64;
        if let Some(sp) = &e.sparse {
            for &(off, len) in &sp.map {
                let mut pos = off;
                let mut left = len;
                while left > 0 {
                    let max = usize::try_from(left).unwrap_or(usize::MAX);
                    let chunk = r.data_chunk_max(max)?;
                    if chunk.is_empty() {
                        // The reader validated that the map sums to the stored size.
                        return Err(Error::Read {
                            entry: r.index(),
                            source: std::io::ErrorKind::UnexpectedEof.into(),
                        });
                    }
                    let take = chunk.len();
                    file.write_all_at(chunk, pos)
                        .map_err(|err| Error::fs("write", rel, err))?;
                    pos += take as u64;
                    left -= take as u64;
                    written += take as u64;
                }
            }
            file.set_len(sp.real_size)
                .map_err(|err| Error::fs("truncate", rel, err))?;
        } else {
            while r.remaining() > 0 {
                let chunk = r.data_chunk()?;
                file.write_all(chunk)
                    .map_err(|err| Error::fs("write", rel, err))?;
                written += chunk.len() as u64;
            }
        }
        let fd = file.as_fd();
        self.fresh_metadata(fd, e, rel, ids, false)?;
        rfs::futimens(fd, &times_of(e.mtime, e.atime))
            .map_err(|err| Error::fs("set times of", rel, err))?;
        Ok(written)
    }

    /// Creates (or merges into) a directory; returns the times to set once it is complete.
    pub(super) fn directory(
        &mut self,
        e: &Entry,
        rel: &[u8],
        parent: &[u8],
        base: &[u8],
        ids: Ids,
    ) -> Result<Timestamps> {
        let mode = Mode::from_raw_mode(e.mode & 0o777);
        let mut fresh = true;
        match rfs::mkdirat(self.dirs.cur(), base, mode) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                fresh = false;
                let st = rfs::statat(self.dirs.cur(), base, rfs::AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|err| Error::fs("lstat", rel, err))?;
                // A directory over a directory merges; over anything else it replaces it.
                if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::Directory {
                    self.create(parent, base, rel, "mkdir", |dir| {
                        rfs::mkdirat(dir, base, mode)
                    })?;
                }
            }
            Err(err) => return Err(Error::fs("mkdir", rel, err)),
        }
        let dir = self.dirs.cur();
        let fd = rfs::openat(dir, base, DIR_FLAGS, Mode::empty())
            .map_err(|err| Error::fs("open directory", rel, err))?;
        if fresh {
            self.fresh_metadata(fd.as_fd(), e, rel, ids, true)?;
        } else {
            rfs::fchown(&fd, Some(ids.0), Some(ids.1))
                .map_err(|err| Error::fs("chown", rel, err))?;
            set_xattrs_fd(fd.as_fd(), e, rel)?;
            rfs::fchmod(&fd, Mode::from_raw_mode(e.mode & 0o7777))
                .map_err(|err| Error::fs("chmod", rel, err))?;
        }
        // The next entries are most likely inside this directory.
        self.dirs.push(base, fd, rel)?;
        Ok(times_of(e.mtime, e.atime))
    }

    pub(super) fn symlink(
        &mut self,
        e: &Entry,
        rel: &[u8],
        parent: &[u8],
        base: &[u8],
        ids: Ids,
    ) -> Result<()> {
        // Differs from moby: a symlink's target is stored as is, even when it points outside
        // the layer; it is only text here, since no later lookup ever follows it out of the root.
        self.create(parent, base, rel, "symlink", |dir| {
            rfs::symlinkat(e.link.as_slice(), dir, base)
        })?;
        metadata_at(self.dirs.cur(), base, e, rel, ids, None, false)
    }

    pub(super) fn hardlink(
        &mut self,
        e: &Entry,
        rel: &[u8],
        parent: &[u8],
        base: &[u8],
        ids: Ids,
    ) -> Result<()> {
        // As moby: a target that climbs out of the layer is a breakout; a rooted one is taken
        // relative to the layer. It is resolved inside the root, never followed at its end.
        let target = path::clean(&e.link).map_err(|err| match err {
            Error::Escape { .. } => Error::Escape {
                name: lossy(&e.link),
            },
            other => other,
        })?;
        if target.is_empty() {
            return Err(Error::InvalidName {
                name: lossy(&e.link),
                reason: "a hardlink to the target directory itself",
            });
        }
        let (tparent, tbase) = split_last(&target);
        let tdir = open_in_root(
            self.dirs.root(),
            tparent,
            OFlags::PATH | OFlags::DIRECTORY,
            "the directory of a hardlink's target",
        )?;
        self.create(parent, base, rel, "hardlink", |dir| {
            rfs::linkat(&tdir, tbase, dir, base, rfs::AtFlags::empty())
        })?;
        let dir = self.dirs.cur();
        let st = rfs::statat(dir, base, rfs::AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|err| Error::fs("lstat", rel, err))?;
        if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Symlink {
            // As moby: a link to a symlink keeps the symlink's metadata.
            return Ok(());
        }
        // As moby, the link entry's metadata lands on the shared inode; the owner is only
        // changed when it differs, so a capability set by the first entry survives.
        let have = (st.st_uid, st.st_gid, st.st_mode & 0o7777);
        metadata_at(dir, base, e, rel, ids, Some(have), true)
    }

    /// Character and block devices, fifos.
    pub(super) fn node(
        &mut self,
        e: &Entry,
        rel: &[u8],
        parent: &[u8],
        base: &[u8],
        ids: Ids,
    ) -> Result<()> {
        let (ft, dev) = match e.kind() {
            Kind::Char => (
                rfs::FileType::CharacterDevice,
                rfs::makedev(e.devmajor, e.devminor),
            ),
            Kind::Block => (
                rfs::FileType::BlockDevice,
                rfs::makedev(e.devmajor, e.devminor),
            ),
            _ => (rfs::FileType::Fifo, 0),
        };
        let made = self.create(parent, base, rel, "mknod", |dir| {
            rfs::mknodat(dir, base, ft, Mode::from_raw_mode(e.mode & 0o777), dev)
        });
        if let Err(err) = made {
            // As moby createTarFile: a user namespace cannot create devices; they are skipped.
            let eperm = err.raw_os_error() == Some(Errno::PERM.raw_os_error());
            if eperm && ft != rfs::FileType::Fifo && in_user_namespace() {
                tracing::debug!(name = %lossy(rel), "device skipped in a user namespace");
                return Ok(());
            }
            return Err(err);
        }
        metadata_at(self.dirs.cur(), base, e, rel, ids, None, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn in_user_namespace_agrees_with_the_namespace_inode() {
        // Independent of the uid map: the initial user namespace has a fixed inode number
        // (the kernel's PROC_USER_INIT_INO).
        const INIT_USER_NS: u64 = 0xEFFF_FFFD;
        let me = std::fs::metadata("/proc/self/ns/user").expect("stat /proc/self/ns/user");
        assert_eq!(in_user_namespace(), me.ino() != INIT_USER_NS);
    }

    #[test]
    fn xattr_result_ignores_only_unsupported_and_refused() {
        assert!(xattr_result(Ok(()), b"f").is_ok());
        assert!(xattr_result(Err(Errno::NOTSUP), b"f").is_ok());
        assert!(xattr_result(Err(Errno::PERM), b"f").is_ok());
        let e = xattr_result(Err(Errno::TOOBIG), b"f").unwrap_err();
        assert_eq!(e.to_string(), "setxattr \"f\"");
        assert_eq!(e.raw_os_error(), Some(Errno::TOOBIG.raw_os_error()));
    }
}
