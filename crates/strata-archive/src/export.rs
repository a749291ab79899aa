//! Export: a layer's upper directory (native diff) or a list of changes taken from a mounted
//! tree (naive diff) → a tar in Docker overlay2's format. Owns the deterministic walk order,
//! the overlay → AUFS whiteout mapping, hardlink detection and header filling. Never modifies
//! the tree it reads and never follows a symlink.

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::apply::{list, open_in_root, DIR_FLAGS, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::error::{Error, Result};
use crate::model::{Change, ChangeKind, ExportOptions, WhiteoutFormat};
use crate::names::Names;
use crate::path::split_last;
use crate::tar::writer::{Header, Writer};
use crate::tar::Kind;
use crate::xattr;

const COPY_BUF: usize = 256 * 1024;

pub(crate) fn open_dir(p: &Path) -> Result<OwnedFd> {
    rfs::open(p, DIR_FLAGS.difference(OFlags::NOFOLLOW), Mode::empty())
        .map_err(|e| Error::fs("open directory", p.as_os_str().as_encoded_bytes(), e))
}

/// Sorted names of an open directory (byte order, as Go's `filepath.Walk`).
pub(crate) fn sorted(dir: BorrowedFd<'_>, shown: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut v = list(dir, shown)?;
    v.sort_unstable();
    Ok(v)
}

pub(crate) fn join(parent: &[u8], base: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(parent.len() + base.len() + 1);
    v.extend_from_slice(parent);
    if !parent.is_empty() {
        v.push(b'/');
    }
    v.extend_from_slice(base);
    v
}

pub(crate) fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// An overlay whiteout: a 0/0 character device.
pub(crate) fn is_whiteout(st: &Stat) -> bool {
    file_type(st) == FileType::CharacterDevice && st.st_rdev == 0
}

struct Exporter<'o, W: Write> {
    w: Writer<BufWriter<W>>,
    opts: &'o ExportOptions,
    /// Whether overlay whiteouts and opaque xattrs are converted (native diff only).
    native: bool,
    links: HashMap<(u64, u64), Vec<u8>>,
    names: Names,
    buf: Vec<u8>,
}

impl<W: Write> Exporter<'_, W> {
    /// Writes the entry for `base` in `dir` (relative path `rel`); returns the open directory
    /// when the entry is one.
    fn add(
        &mut self,
        dir: BorrowedFd<'_>,
        base: &[u8],
        rel: &[u8],
        st: &Stat,
    ) -> Result<Option<OwnedFd>> {
        let ft = file_type(st);
        if ft == FileType::Socket {
            // As moby addTarFile: sockets are skipped.
            return Ok(None);
        }
        let uid = self
            .opts
            .id_maps
            .uid_to_container(st.st_uid)
            .ok_or(Error::Unmapped {
                kind: "uid",
                id: u64::from(st.st_uid),
                name: crate::error::lossy(rel),
            })?;
        let gid = self
            .opts
            .id_maps
            .gid_to_container(st.st_gid)
            .ok_or(Error::Unmapped {
                kind: "gid",
                id: u64::from(st.st_gid),
                name: crate::error::lossy(rel),
            })?;
        // As Go's FileInfoHeader: names are looked up for the host ids.
        let uname = self.names.user(st.st_uid).to_vec();
        let gname = self.names.group(st.st_gid).to_vec();
        let mut h = Header {
            name: rel,
            mode: st.st_mode & 0o7777,
            uid: u64::from(uid),
            gid: u64::from(gid),
            mtime: st.st_mtime,
            uname: &uname,
            gname: &gname,
            ..Header::default()
        };
        if self.native && is_whiteout(st) {
            // As moby's overlay whiteout converter: an empty 0600 file `.wh.NAME`.
            let (parent, _) = split_last(rel);
            let name = join(parent, &[WHITEOUT_PREFIX, base].concat());
            h.name = &name;
            h.mode = 0o600;
            h.kind = Some(Kind::Regular);
            return self.w.header(&h).map(|()| None);
        }
        match ft {
            FileType::RegularFile => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key) {
                        let first = first.clone();
                        h.kind = Some(Kind::Hardlink);
                        h.link = &first;
                        return self.w.header(&h).map(|()| None);
                    }
                    self.links.insert(key, rel.to_vec());
                }
                let fd = rfs::openat(
                    dir,
                    base,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| Error::fs("open", rel, e))?;
                let xattrs = xattr::read_fd(fd.as_fd(), rel)?;
                h.kind = Some(Kind::Regular);
                h.size = u64::try_from(st.st_size).unwrap_or(0);
                h.xattrs = &xattrs;
                self.w.header(&h)?;
                self.copy(fd, h.size, rel)?;
                Ok(None)
            }
            FileType::Directory => {
                let fd = rfs::openat(dir, base, DIR_FLAGS, Mode::empty())
                    .map_err(|e| Error::fs("open directory", rel, e))?;
                let xattrs = xattr::read_fd(fd.as_fd(), rel)?;
                let mut name = rel.to_vec();
                name.push(b'/');
                h.name = &name;
                h.kind = Some(Kind::Dir);
                h.xattrs = &xattrs;
                self.w.header(&h)?;
                if self.native
                    && self.opts.whiteouts != WhiteoutFormat::Delete
                    && xattr::is_opaque(fd.as_fd(), self.opts.whiteouts.opaque_xattr(), rel)?
                {
                    // As moby: the directory entry, then `DIR/.wh..wh..opq` with its mode.
                    let marker = join(rel, WHITEOUT_OPAQUE);
                    let m = Header {
                        name: &marker,
                        kind: Some(Kind::Regular),
                        mode: st.st_mode & 0o777,
                        uid: h.uid,
                        gid: h.gid,
                        uname: &uname,
                        gname: &gname,
                        ..Header::default()
                    };
                    self.w.header(&m)?;
                }
                Ok(Some(fd))
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(dir, base, Vec::new())
                    .map_err(|e| Error::fs("readlink", rel, e))?;
                let xattrs = xattr::read_at(dir, base, rel)?;
                h.kind = Some(Kind::Symlink);
                h.link = target.as_bytes();
                h.xattrs = &xattrs;
                self.w.header(&h).map(|()| None)
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let xattrs = xattr::read_at(dir, base, rel)?;
                h.kind = Some(match ft {
                    FileType::CharacterDevice => Kind::Char,
                    FileType::BlockDevice => Kind::Block,
                    _ => Kind::Fifo,
                });
                h.devmajor = rfs::major(st.st_rdev);
                h.devminor = rfs::minor(st.st_rdev);
                h.xattrs = &xattrs;
                self.w.header(&h).map(|()| None)
            }
            _ => Ok(None),
        }
    }

    /// Copies exactly `size` bytes of the file; a file that shrank meanwhile is an error.
    fn copy(&mut self, fd: OwnedFd, size: u64, rel: &[u8]) -> Result<()> {
        let mut f = std::fs::File::from(fd);
        if self.buf.is_empty() {
            self.buf = vec![0u8; COPY_BUF];
        }
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left).map_or(self.buf.len(), |l| l.min(self.buf.len()));
            let n = match f.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(Error::fs(
                        "read",
                        rel,
                        std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::fs("read", rel, e)),
            };
            self.w.data(&self.buf[..n])?;
            left -= n as u64;
        }
        self.w.pad(size)
    }

    fn walk(&mut self, dir: BorrowedFd<'_>, rel: &[u8]) -> Result<()> {
        for name in sorted(dir, rel)? {
            let child = join(rel, &name);
            let st = match rfs::statat(dir, name.as_slice(), rfs::AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(Error::fs("lstat", &child, e)),
            };
            if let Some(fd) = self.add(dir, &name, &child, &st)? {
                self.walk(fd.as_fd(), &child)?;
            }
        }
        Ok(())
    }
}

fn exporter<W: Write>(out: W, opts: &ExportOptions, native: bool) -> Exporter<'_, W> {
    Exporter {
        w: Writer::new(BufWriter::with_capacity(1 << 20, out)),
        opts,
        native,
        links: HashMap::new(),
        names: Names::default(),
        buf: Vec::new(),
    }
}

/// See [`crate::export`].
pub(crate) fn export(upper: &Path, out: impl Write, opts: &ExportOptions) -> Result<()> {
    let root = open_dir(upper)?;
    let mut ex = exporter(out, opts, true);
    if opts.whiteouts != WhiteoutFormat::Delete
        && xattr::is_opaque(root.as_fd(), opts.whiteouts.opaque_xattr(), b"")?
    {
        // Differs from moby, whose walk skips the root and so loses a root-level opaque
        // marker that an applied tar put there: it is written first, as the tar had it.
        let st = rfs::fstat(&root).map_err(|e| Error::fs("stat", b"", e))?;
        let uid = opts.id_maps.uid_to_container(st.st_uid).unwrap_or(0);
        let gid = opts.id_maps.gid_to_container(st.st_gid).unwrap_or(0);
        ex.w.header(&Header {
            name: WHITEOUT_OPAQUE,
            kind: Some(Kind::Regular),
            mode: st.st_mode & 0o777,
            uid: u64::from(uid),
            gid: u64::from(gid),
            ..Header::default()
        })?;
    }
    ex.walk(root.as_fd(), b"")?;
    ex.w.finish()?;
    Ok(())
}

/// See [`crate::export_changes`].
pub(crate) fn export_changes(
    root: &Path,
    changes: &[Change],
    out: impl Write,
    opts: &ExportOptions,
) -> Result<()> {
    let rootfd = open_dir(root)?;
    let mut sorted_changes: Vec<&Change> = changes.iter().collect();
    sorted_changes.sort_by(|a, b| a.path.cmp(&b.path));
    let mut ex = exporter(out, opts, false);
    for c in sorted_changes {
        let rel = crate::path::clean(c.path.as_bytes())?;
        if rel.is_empty() {
            continue;
        }
        let (parent, base) = split_last(&rel);
        if c.kind == ChangeKind::Delete {
            // As moby ExportChanges: an AUFS whiteout file. Differs from moby: its times are
            // zero instead of "now", so the output is reproducible.
            let name = join(parent, &[WHITEOUT_PREFIX, base].concat());
            ex.w.header(&Header {
                name: &name,
                kind: Some(Kind::Regular),
                mode: 0o600,
                ..Header::default()
            })?;
            continue;
        }
        let dir = open_in_root(
            rootfd.as_fd(),
            parent,
            OFlags::RDONLY | OFlags::DIRECTORY,
            "the directory of a changed path",
        )?;
        let st = match rfs::statat(&dir, base, rfs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // As moby: a path that vanished is left out.
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(Error::fs("lstat", &rel, e)),
        };
        ex.add(dir.as_fd(), base, &rel, &st)?;
    }
    ex.w.finish()?;
    Ok(())
}
