//! Directory handles beneath the apply root. Owns the cache of open parent directories (a stack
//! following the tar's depth-first order) and the in-root resolution used when a parent path
//! goes through a symlink. Never resolves a path by joining strings onto a host path, and never
//! lets a lookup leave the root: single components are opened with `O_NOFOLLOW`, anything that
//! needs a symlink followed goes through `openat2(RESOLVE_IN_ROOT)`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{lossy, short, Error, Result};
use crate::path::components;

/// Flags to open a directory we will read or change metadata of.
pub(crate) const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Resolution flags for every multi-component lookup beneath the root: symlinks are followed
/// as if the root were `/` (Docker's chroot semantics, without chroot), magic links never.
pub(crate) const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens `rel` (a cleaned relative path) beneath `root` with in-root resolution; the bare
/// errno, for callers that only look at it.
pub(crate) fn open_in_root_raw(
    root: BorrowedFd<'_>,
    rel: &[u8],
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    let p: &[u8] = if rel.is_empty() { b"." } else { rel };
    loop {
        match rfs::openat2(root, p, flags | OFlags::CLOEXEC, Mode::empty(), IN_ROOT) {
            Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// Opens `rel` (a cleaned relative path) beneath `root` with in-root resolution. A failure says
/// `what` the path was needed for and which component stopped the lookup.
pub(crate) fn open_in_root(
    root: BorrowedFd<'_>,
    rel: &[u8],
    flags: OFlags,
    what: &'static str,
) -> Result<OwnedFd> {
    open_in_root_raw(root, rel, flags).map_err(|e| resolve_error(root, rel, what, e))
}

/// The error for a failed in-root lookup of `rel`, explained (see [`explain`]).
pub(crate) fn resolve_error(
    root: BorrowedFd<'_>,
    rel: &[u8],
    what: &'static str,
    err: Errno,
) -> Error {
    Error::Resolve {
        what,
        path: lossy(rel),
        why: explain(root, rel, err),
        source: err.into(),
    }
}

/// Walks `rel` beneath `root` one component at a time, as the failed in-root lookup did, and
/// says which component stopped it and how. Only runs after a failure, so it may cost a few
/// syscalls; never follows a symlink out of the root.
fn explain(root: BorrowedFd<'_>, rel: &[u8], err: Errno) -> String {
    let shown = |p: &[u8]| short(&lossy(p));
    let Ok(mut cur) = rfs::openat(root, ".", DIR_FLAGS, Mode::empty()) else {
        return format!("the root cannot be opened ({err})");
    };
    let mut prefix: Vec<u8> = Vec::new();
    for c in components(rel) {
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(c);
        let st = match rfs::statat(&cur, c, rfs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return format!("{} does not exist", shown(&prefix)),
            Err(e) => return format!("{} cannot be looked up ({e})", shown(&prefix)),
        };
        match rfs::FileType::from_raw_mode(st.st_mode) {
            rfs::FileType::Directory => match rfs::openat(&cur, c, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => cur = fd,
                Err(e) => return format!("directory {} cannot be opened ({e})", shown(&prefix)),
            },
            rfs::FileType::Symlink => {
                let target = rfs::readlinkat(&cur, c, Vec::new())
                    .map(|t| shown(t.as_bytes()))
                    .unwrap_or_else(|_| String::from("an unreadable target"));
                let link = format!("{} is a symlink to {target}", shown(&prefix));
                match open_in_root_raw(root, &prefix, OFlags::RDONLY | OFlags::DIRECTORY) {
                    Ok(fd) => cur = fd,
                    Err(Errno::NOENT) => {
                        return format!("{link}, which leads to nothing beneath the root")
                    }
                    Err(Errno::NOTDIR) => {
                        return format!("{link}, which does not lead to a directory")
                    }
                    Err(Errno::LOOP) => {
                        return format!("{link}, which leads through too many symlinks (a loop?)")
                    }
                    Err(e) => return format!("{link}, which cannot be followed ({e})"),
                }
            }
            other => {
                return format!("{} is a {}, not a directory", shown(&prefix), kind(other));
            }
        }
    }
    format!("the lookup failed ({err})")
}

fn kind(t: rfs::FileType) -> &'static str {
    match t {
        rfs::FileType::RegularFile => "regular file",
        rfs::FileType::CharacterDevice => "character device",
        rfs::FileType::BlockDevice => "block device",
        rfs::FileType::Fifo => "fifo",
        rfs::FileType::Socket => "socket",
        _ => "non-directory",
    }
}

/// What a directory means for entries created in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirInfo {
    /// The gid a new entry gets: the directory's own when it is setgid, else ours.
    pub(crate) new_gid: u32,
    /// The directory is setgid: a new subdirectory inherits `S_ISGID`.
    pub(crate) setgid: bool,
    /// No default ACL: a new entry's mode is the requested mode minus the umask.
    pub(crate) plain: bool,
}

impl DirInfo {
    fn of(fd: BorrowedFd<'_>, shown: &[u8]) -> Result<DirInfo> {
        let st = rfs::fstat(fd).map_err(|e| Error::fs("stat directory", shown, e))?;
        let setgid = st.st_mode & 0o2000 != 0;
        let new_gid = if setgid {
            st.st_gid
        } else {
            rustix::process::getegid().as_raw()
        };
        let mut buf = [0u8; 0];
        let plain = matches!(
            rfs::fgetxattr(fd, "system.posix_acl_default", &mut buf),
            Err(Errno::NODATA) | Err(Errno::NOTSUP)
        );
        Ok(DirInfo {
            new_gid,
            setgid,
            plain,
        })
    }
}

/// The root and a stack of open directories: `stack[i]` is the directory the tar path
/// `stack[0].0/…/stack[i].0` resolves to.
#[derive(Debug)]
pub(crate) struct Dirs {
    root: OwnedFd,
    root_info: DirInfo,
    stack: Vec<(Vec<u8>, OwnedFd, DirInfo)>,
    /// Owner given to directories created because an entry needed them (mapped root).
    implied_owner: (Option<rfs::Uid>, Option<rfs::Gid>),
}

impl Dirs {
    pub(crate) fn open(target: &Path, implied_owner: (u32, u32)) -> Result<Dirs> {
        let root = rfs::open(
            target,
            DIR_FLAGS.difference(OFlags::NOFOLLOW),
            Mode::empty(),
        )
        .map_err(|e| {
            Error::fs(
                "open target directory",
                target.as_os_str().as_encoded_bytes(),
                e,
            )
        })?;
        let root_info = DirInfo::of(root.as_fd(), b"")?;
        Ok(Dirs {
            root,
            root_info,
            stack: Vec::new(),
            implied_owner: (
                Some(rfs::Uid::from_raw(implied_owner.0)),
                Some(rfs::Gid::from_raw(implied_owner.1)),
            ),
        })
    }

    pub(crate) fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// The directory set by the last [`Dirs::enter`].
    pub(crate) fn cur(&self) -> BorrowedFd<'_> {
        self.stack
            .last()
            .map_or(self.root.as_fd(), |(_, fd, _)| fd.as_fd())
    }

    /// How entries created in the current directory start out.
    pub(crate) fn cur_info(&self) -> DirInfo {
        self.stack.last().map_or(self.root_info, |(_, _, i)| *i)
    }

    /// Forgets every cached directory (after anything was removed).
    pub(crate) fn invalidate(&mut self) {
        self.stack.clear();
    }

    /// Records that `name` inside the current directory is the open directory `fd`.
    pub(crate) fn push(&mut self, name: &[u8], fd: OwnedFd, shown: &[u8]) -> Result<()> {
        let info = DirInfo::of(fd.as_fd(), shown)?;
        self.stack.push((name.to_vec(), fd, info));
        Ok(())
    }

    /// Makes `parent` (cleaned, relative) the current directory, creating missing components
    /// as Docker does (mode 0755, owned by the mapped root).
    pub(crate) fn enter(&mut self, parent: &[u8]) -> Result<()> {
        let mut depth = 0;
        let mut comps = components(parent);
        let mut pending: Option<&[u8]> = None;
        for c in comps.by_ref() {
            if depth < self.stack.len() && self.stack[depth].0 == c {
                depth += 1;
            } else {
                pending = Some(c);
                break;
            }
        }
        self.stack.truncate(depth);
        let Some(first) = pending else {
            return Ok(());
        };
        for c in std::iter::once(first).chain(comps) {
            let fd = self.open_child(parent, c)?;
            self.push(c, fd, parent)?;
        }
        Ok(())
    }

    fn open_child(&self, parent: &[u8], c: &[u8]) -> Result<OwnedFd> {
        let cur = self.cur();
        match rfs::openat(cur, c, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(fd),
            Err(Errno::NOENT) => {
                match rfs::mkdirat(cur, c, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(Error::fs("mkdir implied parent of", parent, e)),
                }
                let fd = rfs::openat(cur, c, DIR_FLAGS, Mode::empty())
                    .map_err(|e| Error::fs("open implied parent of", parent, e))?;
                rfs::fchown(&fd, self.implied_owner.0, self.implied_owner.1)
                    .map_err(|e| Error::fs("chown implied parent of", parent, e))?;
                rfs::fchmod(&fd, Mode::from_raw_mode(0o755))
                    .map_err(|e| Error::fs("chmod implied parent of", parent, e))?;
                Ok(fd)
            }
            Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                // A symlink (or a non-directory): resolve this prefix inside the root, as a
                // chrooted extraction would. A non-directory fails here with ENOTDIR.
                let mut prefix = Vec::new();
                for (name, _, _) in &self.stack {
                    prefix.extend_from_slice(name);
                    prefix.push(b'/');
                }
                prefix.extend_from_slice(c);
                open_in_root_raw(
                    self.root.as_fd(),
                    &prefix,
                    OFlags::RDONLY | OFlags::DIRECTORY,
                )
                .map_err(|e| {
                    let mut err =
                        resolve_error(self.root.as_fd(), &prefix, "the directory of an entry", e);
                    if let Error::Resolve { path, .. } = &mut err {
                        // The why names the component; the path is the whole directory.
                        *path = lossy(parent);
                    }
                    err
                })
            }
            Err(e) => Err(Error::fs("open parent", parent, e)),
        }
    }
}

/// Removes `name` in `dir` and, if it is a directory, everything beneath it, never following
/// a symlink. A missing entry is not an error.
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &[u8], shown: &[u8]) -> Result<()> {
    let st = match rfs::statat(dir, name, rfs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(Error::fs("lstat", shown, e)),
    };
    if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory {
        let fd = rfs::openat(dir, name, DIR_FLAGS, Mode::empty())
            .map_err(|e| Error::fs("open for removal", shown, e))?;
        empty_dir(fd.as_fd(), shown, &mut |_| false)?;
        rfs::unlinkat(dir, name, rfs::AtFlags::REMOVEDIR).map_err(|e| Error::fs("rmdir", shown, e))
    } else {
        match rfs::unlinkat(dir, name, rfs::AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::fs("unlink", shown, e)),
        }
    }
}

/// Names in `dir`, unsorted, without `.` and `..`.
pub(crate) fn list(dir: BorrowedFd<'_>, shown: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut d = rfs::Dir::read_from(dir).map_err(|e| Error::fs("read directory", shown, e))?;
    let mut names = Vec::new();
    while let Some(ent) = d.read() {
        let ent = ent.map_err(|e| Error::fs("read directory", shown, e))?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    Ok(names)
}

/// Removes the entries of `dir` for which `keep(name)` is false (recursively).
pub(crate) fn empty_dir(
    dir: BorrowedFd<'_>,
    shown: &[u8],
    keep: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<()> {
    for n in list(dir, shown)? {
        if !keep(&n) {
            let mut s = shown.to_vec();
            s.push(b'/');
            s.extend_from_slice(&n);
            remove_all(dir, &n, &s)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_in_root_fds_are_close_on_exec_whatever_the_flags() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(t.path().join("x")).expect("mkdir");
        let root = rfs::open(t.path(), DIR_FLAGS, Mode::empty()).expect("open root");
        for flags in [
            DIR_FLAGS,
            OFlags::PATH | OFlags::DIRECTORY,
            OFlags::RDONLY | OFlags::DIRECTORY,
        ] {
            let fd = open_in_root_raw(root.as_fd(), b"x", flags).expect("open x");
            let fl = rustix::io::fcntl_getfd(&fd).expect("getfd");
            assert!(fl.contains(rustix::io::FdFlags::CLOEXEC), "{flags:?}");
            let fd = open_in_root(root.as_fd(), b"x", flags, "test").expect("open x");
            let fl = rustix::io::fcntl_getfd(&fd).expect("getfd");
            assert!(fl.contains(rustix::io::FdFlags::CLOEXEC), "{flags:?}");
        }
    }

    #[test]
    fn explain_names_the_component_and_what_it_is() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path();
        std::fs::create_dir(p.join("d")).expect("mkdir");
        std::fs::write(p.join("d/file"), b"x").expect("write");
        rfs::mknodat(
            rfs::CWD,
            p.join("d/fifo"),
            rfs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        let _sock = std::os::unix::net::UnixListener::bind(p.join("d/sock")).expect("bind");
        std::os::unix::fs::symlink("/d", p.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("file", p.join("d/tofile")).expect("symlink");
        std::os::unix::fs::symlink("nowhere", p.join("d/dangling")).expect("symlink");
        std::os::unix::fs::symlink("loop", p.join("d/loop")).expect("symlink");
        let root = rfs::open(p, DIR_FLAGS, Mode::empty()).expect("open root");
        let cases: &[(&str, &str)] = &[
            ("d/file/x", "\"d/file\" is a regular file, not a directory"),
            ("d/fifo/x", "\"d/fifo\" is a fifo, not a directory"),
            ("d/sock/x", "\"d/sock\" is a socket, not a directory"),
            ("d/missing/x", "\"d/missing\" does not exist"),
            // Through a symlink that resolves (inside the root), on to the next component.
            ("abs/file/x", "\"abs/file\" is a regular file, not a directory"),
            (
                "abs/tofile/x",
                "\"abs/tofile\" is a symlink to \"file\", which does not lead to a directory",
            ),
            (
                "d/dangling/x",
                "\"d/dangling\" is a symlink to \"nowhere\", which leads to nothing beneath the root",
            ),
            (
                "d/loop/x",
                "\"d/loop\" is a symlink to \"loop\", which leads through too many symlinks (a loop?)",
            ),
        ];
        for (rel, want) in cases {
            let err = open_in_root_raw(
                root.as_fd(),
                rel.as_bytes(),
                OFlags::PATH | OFlags::DIRECTORY,
            )
            .expect_err(rel);
            assert_eq!(explain(root.as_fd(), rel.as_bytes(), err), *want, "{rel}");
        }
        // Nothing wrong on the way: the lookup's own error is all there is to say.
        assert_eq!(
            explain(root.as_fd(), b"d", Errno::ACCESS),
            format!("the lookup failed ({})", Errno::ACCESS)
        );
        if rustix::process::geteuid().is_root() {
            rfs::mknodat(
                rfs::CWD,
                p.join("d/chr"),
                rfs::FileType::CharacterDevice,
                Mode::empty(),
                0,
            )
            .expect("mknod");
            rfs::mknodat(
                rfs::CWD,
                p.join("d/blk"),
                rfs::FileType::BlockDevice,
                Mode::empty(),
                0,
            )
            .expect("mknod");
            assert_eq!(
                explain(root.as_fd(), b"d/chr/x", Errno::NOTDIR),
                "\"d/chr\" is a character device, not a directory"
            );
            assert_eq!(
                explain(root.as_fd(), b"d/blk/x", Errno::NOTDIR),
                "\"d/blk\" is a block device, not a directory"
            );
        }
    }
}
