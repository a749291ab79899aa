//! Apply: stream a layer tar into a directory. Owns the entry loop, the mapping of AUFS-style
//! whiteouts to the on-disk format, Docker's replace-or-merge rule and the deferred directory
//! times. Never writes, changes or removes anything outside the target directory: every path
//! is reached from a directory fd beneath the root (see [`dirs`]).

mod dirs;
mod entry;

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{self as rfs, Mode, Timestamps};
use rustix::io::Errno;

use crate::error::{lossy, Error, Result};
use crate::model::{ApplyOptions, ApplyStats, WhiteoutFormat};
use crate::path::{self, split_last};
use crate::tar::reader::Reader;
use crate::tar::{Kind, Time};

pub(crate) use dirs::{list, open_in_root, open_in_root_raw, remove_all, resolve_error, DIR_FLAGS};

/// AUFS whiteout prefix (`.wh.NAME` deletes NAME).
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// AUFS opaque-directory marker.
pub const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
/// Prefix of AUFS metadata entries at the root (`.wh..wh.plnk`, `.wh..wh.aufs`).
pub const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// AUFS hardlink directory: its files are hardlink targets, then it is removed.
pub const WHITEOUT_LINK_DIR: &[u8] = b".wh..wh.plnk";

pub(crate) fn timespec(t: Time) -> rfs::Timespec {
    rfs::Timespec {
        tv_sec: t.secs,
        tv_nsec: i64::from(t.nanos),
    }
}

/// As moby `createTarFile`: access time never before the modification time.
pub(crate) fn times_of(mtime: Time, atime: Option<Time>) -> Timestamps {
    let a = match atime {
        Some(a) if a >= mtime => a,
        _ => mtime,
    };
    Timestamps {
        last_access: timespec(a),
        last_modification: timespec(mtime),
    }
}

/// State of one apply run.
#[derive(Debug)]
pub(crate) struct Applier<'o> {
    pub(crate) dirs: dirs::Dirs,
    pub(crate) opts: &'o ApplyOptions,
    /// Directories whose times are set at the end (after their children were written).
    dir_times: Vec<(Vec<u8>, Timestamps)>,
    /// Paths written by this tar (only tracked for [`WhiteoutFormat::Delete`]).
    unpacked: HashSet<Vec<u8>>,
    plnk_used: bool,
    /// Our effective uid: the owner a new entry starts with.
    pub(crate) euid: u32,
    /// The process umask, when known: lets a fresh entry skip a `chmod` it does not need.
    pub(crate) umask: Option<u32>,
}

/// The umask, read without changing it (`umask(2)` would race with other threads).
fn read_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Umask:"))?;
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
}

/// See [`crate::apply`].
pub(crate) fn apply(tar: impl Read, target: &Path, opts: &ApplyOptions) -> Result<ApplyStats> {
    let root_uid = opts.id_maps.uid_to_host(0).unwrap_or(0);
    let root_gid = opts.id_maps.gid_to_host(0).unwrap_or(0);
    let mut a = Applier {
        dirs: dirs::Dirs::open(target, (root_uid, root_gid))?,
        opts,
        dir_times: Vec::new(),
        unpacked: HashSet::new(),
        plnk_used: false,
        euid: rustix::process::geteuid().as_raw(),
        umask: read_umask(),
    };
    let mut r = Reader::new(tar);
    let mut stats = ApplyStats::default();
    while let Some(e) = r.next_entry()? {
        stats.entries += 1;
        tracing::trace!(name = %lossy(&e.name), "apply entry");
        a.entry(&mut r, e, &mut stats)?;
    }
    r.drain()?;
    if a.plnk_used {
        a.dirs.invalidate();
        remove_all(a.dirs.root(), WHITEOUT_LINK_DIR, WHITEOUT_LINK_DIR)?;
    }
    for (rel, times) in &a.dir_times {
        // A directory replaced or removed later in the archive is skipped.
        let fd = match open_in_root_raw(a.dirs.root(), rel, DIR_FLAGS) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => continue,
            Err(e) => {
                return Err(resolve_error(
                    a.dirs.root(),
                    rel,
                    "a directory to set times of",
                    e,
                ))
            }
        };
        rfs::futimens(&fd, times).map_err(|e| Error::fs("set times of", rel, e))?;
    }
    Ok(stats)
}

impl Applier<'_> {
    fn entry<R: Read>(
        &mut self,
        r: &mut Reader<R>,
        e: crate::tar::Entry,
        stats: &mut ApplyStats,
    ) -> Result<()> {
        let rel = path::clean(&e.name)?;
        if let Kind::Other(f) = e.kind() {
            return Err(Error::UnsupportedType {
                typeflag: char::from(f),
                name: lossy(&e.name),
            });
        }
        let first = path::components(&rel).next().unwrap_or(b"");
        if first.starts_with(WHITEOUT_META_PREFIX) && rel != WHITEOUT_OPAQUE {
            // AUFS metadata: skipped, except files of the hardlink directory, which are
            // extracted so that hardlinks to them resolve, and removed at the end.
            let is_plnk_file = first == WHITEOUT_LINK_DIR
                && e.kind() == Kind::Regular
                && rel.len() > WHITEOUT_LINK_DIR.len();
            if !is_plnk_file {
                return Ok(());
            }
            self.plnk_used = true;
        }
        if rel.is_empty() {
            if e.kind() == Kind::Dir {
                // As moby archive.Unpack: the root's own entry is skipped.
                return Ok(());
            }
            return Err(Error::InvalidName {
                name: lossy(&e.name),
                reason: "a non-directory entry names the target directory itself",
            });
        }
        let (parent, base) = split_last(&rel);
        if let Some(wh) = base.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(&e, &rel, parent, wh);
        }
        let unmapped = |kind, id| Error::Unmapped {
            kind,
            id,
            name: lossy(&e.name),
        };
        let maps = &self.opts.id_maps;
        let uid = maps
            .uid_to_host(e.uid)
            .ok_or_else(|| unmapped("uid", e.uid))?;
        let gid = maps
            .gid_to_host(e.gid)
            .ok_or_else(|| unmapped("gid", e.gid))?;
        self.dirs.enter(parent)?;
        // As moby, an existing path is removed first unless a directory meets a directory;
        // the creators try first and only look when the name is taken (see `create`).
        let ids = (rfs::Uid::from_raw(uid), rfs::Gid::from_raw(gid));
        match e.kind() {
            Kind::Regular => {
                stats.bytes += self.regular(r, &e, &rel, parent, base, ids)?;
            }
            Kind::Dir => {
                let times = self.directory(&e, &rel, parent, base, ids)?;
                self.dir_times.push((rel.clone(), times));
            }
            Kind::Symlink => self.symlink(&e, &rel, parent, base, ids)?,
            Kind::Hardlink => self.hardlink(&e, &rel, parent, base, ids)?,
            Kind::Char | Kind::Block | Kind::Fifo => self.node(&e, &rel, parent, base, ids)?,
            Kind::Other(_) => unreachable!("rejected above"),
        }
        if self.opts.whiteouts == WhiteoutFormat::Delete {
            self.unpacked.insert(rel);
        }
        Ok(())
    }

    fn whiteout(
        &mut self,
        e: &crate::tar::Entry,
        rel: &[u8],
        parent: &[u8],
        wh: &[u8],
    ) -> Result<()> {
        self.dirs.enter(parent)?;
        if [WHITEOUT_PREFIX, wh].concat() == WHITEOUT_OPAQUE {
            return self.opaque(parent);
        }
        if wh.is_empty() || wh == b"." || wh == b".." {
            return Err(Error::InvalidName {
                name: lossy(&e.name),
                reason: "a whiteout that names no entry",
            });
        }
        let mut target = parent.to_vec();
        if !target.is_empty() {
            target.push(b'/');
        }
        target.extend_from_slice(wh);
        if self.opts.whiteouts == WhiteoutFormat::Delete {
            remove_all(self.dirs.cur(), wh, &target)?;
            self.dirs.invalidate();
            return Ok(());
        }
        // As moby's overlay whiteout converter: a 0/0 character device owned as the entry says
        // (replacing whatever this layer had at that name).
        self.create(parent, wh, &target, "mknod whiteout", |dir| {
            rfs::mknodat(dir, wh, rfs::FileType::CharacterDevice, Mode::empty(), 0)
        })?;
        let dir = self.dirs.cur();
        let uid = self
            .opts
            .id_maps
            .uid_to_host(e.uid)
            .ok_or_else(|| Error::Unmapped {
                kind: "uid",
                id: e.uid,
                name: lossy(rel),
            })?;
        let gid = self
            .opts
            .id_maps
            .gid_to_host(e.gid)
            .ok_or_else(|| Error::Unmapped {
                kind: "gid",
                id: e.gid,
                name: lossy(rel),
            })?;
        rfs::chownat(
            dir,
            wh,
            Some(rfs::Uid::from_raw(uid)),
            Some(rfs::Gid::from_raw(gid)),
            rfs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|err| Error::fs("chown whiteout", &target, err))?;
        // Differs from moby: the whiteout keeps the entry's mtime, so a re-export is stable.
        rfs::utimensat(
            dir,
            wh,
            &times_of(e.mtime, None),
            rfs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|err| Error::fs("set times of whiteout", &target, err))?;
        Ok(())
    }

    /// Runs `make` in the current directory; when the name is taken, applies moby's rule
    /// for a non-directory (remove whatever is there) and runs it once more.
    pub(crate) fn create<T>(
        &mut self,
        parent: &[u8],
        base: &[u8],
        rel: &[u8],
        op: &'static str,
        mut make: impl FnMut(std::os::fd::BorrowedFd<'_>) -> rustix::io::Result<T>,
    ) -> Result<T> {
        match make(self.dirs.cur()) {
            Err(Errno::EXIST) => {
                remove_all(self.dirs.cur(), base, rel)?;
                self.dirs.invalidate();
                self.dirs.enter(parent)?;
                make(self.dirs.cur()).map_err(|e| Error::fs(op, rel, e))
            }
            r => r.map_err(|e| Error::fs(op, rel, e)),
        }
    }

    fn opaque(&mut self, parent: &[u8]) -> Result<()> {
        match self.opts.whiteouts {
            WhiteoutFormat::Overlay | WhiteoutFormat::OverlayUserXattr => {
                let name = self.opts.whiteouts.opaque_xattr();
                rfs::fsetxattr(self.dirs.cur(), name, b"y", rfs::XattrFlags::empty())
                    .map_err(|e| Error::fs("set opaque xattr on", parent, e))
            }
            WhiteoutFormat::Delete => {
                // As moby UnpackLayer, whose walk does not enter a directory given as a
                // symlink: a marker beneath a symlink does nothing.
                let (grand, last) = split_last(parent);
                if !parent.is_empty() {
                    self.dirs.enter(grand)?;
                    let st = rfs::statat(self.dirs.cur(), last, rfs::AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| Error::fs("lstat", parent, e))?;
                    if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Symlink {
                        return Ok(());
                    }
                    self.dirs.enter(parent)?;
                }
                // Empty the directory of everything this tar did not write.
                let fd = rfs::openat(self.dirs.cur(), ".", DIR_FLAGS, Mode::empty())
                    .map_err(|e| Error::fs("open", parent, e))?;
                self.dirs.invalidate();
                empty_unwritten(fd.as_fd(), parent, &self.unpacked)
            }
        }
    }
}

fn empty_unwritten(
    dir: std::os::fd::BorrowedFd<'_>,
    rel: &[u8],
    unpacked: &HashSet<Vec<u8>>,
) -> Result<()> {
    for name in list(dir, rel)? {
        let mut child = rel.to_vec();
        if !child.is_empty() {
            child.push(b'/');
        }
        child.extend_from_slice(&name);
        if !unpacked.contains(&child) {
            remove_all(dir, &name, &child)?;
        } else if let Ok(fd) = rfs::openat(dir, name.as_slice(), DIR_FLAGS, Mode::empty()) {
            empty_unwritten(fd.as_fd(), &child, unpacked)?;
        }
    }
    Ok(())
}
