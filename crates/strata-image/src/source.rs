//! Access to the files of an image, whether it comes as a tar archive or as a directory (an OCI
//! layout or an unpacked `docker save`). A tar is indexed in one pass over its headers (data is
//! skipped by seeking), then each file is read straight from its offset, so layers stream and
//! never sit in memory. Input that cannot be seeked (a pipe, a compressed archive) is spooled to
//! an unnamed temporary file first. This module never writes anywhere but that spool file and
//! never resolves a name outside the archive or directory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::compression::{self, Compression};
use crate::error::{Error, Result};

/// Most symlinks followed to resolve one name inside an archive.
const MAX_LINKS: usize = 40;
/// Buffer size of a blob reader.
const BLOB_BUFFER: usize = 256 * 1024;

#[derive(Debug, Clone)]
enum Entry {
    File { offset: u64, size: u64 },
    Symlink { target: String },
    Hardlink { target: String },
    Other,
}

/// The files of an image: a tar archive (indexed) or a directory.
#[derive(Debug)]
pub(crate) struct Source {
    /// What the user named (for messages).
    path: PathBuf,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Tar {
        file: File,
        entries: HashMap<String, Entry>,
    },
    Dir,
}

impl Source {
    /// Opens `path`: a directory, or a tar archive (plain, or gzip/zstd-compressed: then spooled
    /// decompressed into an unnamed file in `spool_dir`).
    pub(crate) fn open(path: &Path, spool_dir: &Path) -> Result<Source> {
        let meta = std::fs::metadata(path).map_err(Error::io("open image", path))?;
        if meta.is_dir() {
            return Ok(Source {
                path: path.to_owned(),
                kind: Kind::Dir,
            });
        }
        let file = File::open(path).map_err(Error::io("open image", path))?;
        let mut reader = BufReader::new(file);
        let compression =
            compression::detect(&mut reader).map_err(Error::io("read image", path))?;
        if meta.is_file() && compression == Compression::None {
            let mut file = reader.into_inner();
            file.rewind().map_err(Error::io("read image", path))?;
            return Source::index(path, file);
        }
        Source::spool(path, reader, spool_dir)
    }

    /// Reads an archive from a stream (standard input): spooled into `spool_dir` first.
    pub(crate) fn from_reader(name: &Path, input: impl Read, spool_dir: &Path) -> Result<Source> {
        Source::spool(name, BufReader::new(input), spool_dir)
    }

    fn spool(name: &Path, input: impl BufRead, spool_dir: &Path) -> Result<Source> {
        // O_TMPFILE: the spool has no name, so a crash leaves nothing behind.
        let mut file = tempfile::tempfile_in(spool_dir)
            .map_err(Error::io("create spool file in", spool_dir))?;
        let (_, mut decoder) =
            compression::decompress(input).map_err(Error::io("read image", name))?;
        io::copy(&mut decoder, &mut file).map_err(Error::io("spool image", name))?;
        file.rewind().map_err(Error::io("rewind spool of", name))?;
        Source::index(name, file)
    }

    fn index(path: &Path, file: File) -> Result<Source> {
        let mut entries = HashMap::new();
        {
            let mut archive = tar::Archive::new(&file);
            let iter = archive
                .entries_with_seek()
                .map_err(Error::io("read tar of", path))?;
            for entry in iter {
                let entry = entry.map_err(Error::io("read tar header of", path))?;
                let raw = entry
                    .path()
                    .map_err(Error::io("read tar header of", path))?;
                let Some(name) = normalize("", &raw.to_string_lossy()) else {
                    continue;
                };
                let link = || -> Result<String> {
                    Ok(entry
                        .link_name()
                        .map_err(Error::io("read tar header of", path))?
                        .map(|l| l.to_string_lossy().into_owned())
                        .unwrap_or_default())
                };
                let kind = entry.header().entry_type();
                let e = if kind.is_file() || kind == tar::EntryType::Continuous {
                    Entry::File {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    }
                } else if kind.is_symlink() {
                    Entry::Symlink { target: link()? }
                } else if kind.is_hard_link() {
                    Entry::Hardlink { target: link()? }
                } else {
                    Entry::Other
                };
                entries.insert(name, e);
            }
        }
        Ok(Source {
            path: path.to_owned(),
            kind: Kind::Tar { file, entries },
        })
    }

    /// The archive or directory as the user named it.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a regular file `name` exists (after following links).
    pub(crate) fn has(&self, name: &str) -> bool {
        match &self.kind {
            Kind::Tar { .. } => self.locate(name).is_ok(),
            Kind::Dir => normalize("", name).is_some_and(|n| self.path.join(n).is_file()),
        }
    }

    /// Opens `name` for streaming; also returns its size.
    pub(crate) fn open_file(
        &self,
        name: &str,
        what: &'static str,
    ) -> Result<(Box<dyn BufRead + Send + '_>, u64)> {
        let missing = || Error::MissingEntry {
            archive: self.path.clone(),
            what,
            name: name.to_owned(),
        };
        match &self.kind {
            Kind::Tar { file, .. } => {
                let (offset, size) = self.locate(name).map_err(|()| missing())?;
                let section = Section {
                    file,
                    pos: offset,
                    end: offset + size,
                };
                Ok((
                    Box::new(BufReader::with_capacity(BLOB_BUFFER, section)),
                    size,
                ))
            }
            Kind::Dir => {
                let rel = normalize("", name).ok_or_else(missing)?;
                let full = self.path.join(rel);
                let f = match File::open(&full) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
                    Err(e) => return Err(Error::io("open", full)(e)),
                };
                let size = f.metadata().map_err(Error::io("stat", &full))?.len();
                Ok((Box::new(BufReader::with_capacity(BLOB_BUFFER, f)), size))
            }
        }
    }

    /// Reads a small file (JSON metadata) whole; refuses one larger than `limit`.
    pub(crate) fn read_small(&self, name: &str, what: &'static str, limit: u64) -> Result<Vec<u8>> {
        let (mut r, size) = self.open_file(name, what)?;
        if size > limit {
            return Err(Error::BadMetadata {
                archive: self.path.clone(),
                doc: name.to_owned(),
                reason: format!("{size} bytes is more than the {limit} allowed for a {what}"),
            });
        }
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        r.read_to_end(&mut buf)
            .map_err(Error::io("read", self.path.join(name)))?;
        Ok(buf)
    }

    /// Offset and size of the regular file `name` inside the tar, following links.
    fn locate(&self, name: &str) -> std::result::Result<(u64, u64), ()> {
        let Kind::Tar { entries, .. } = &self.kind else {
            return Err(());
        };
        let mut current = normalize("", name).ok_or(())?;
        for _ in 0..MAX_LINKS {
            match entries.get(&current).ok_or(())? {
                Entry::File { offset, size } => return Ok((*offset, *size)),
                Entry::Symlink { target } => {
                    let dir = current.rsplit_once('/').map_or("", |(d, _)| d).to_owned();
                    current = normalize(&dir, target).ok_or(())?;
                }
                Entry::Hardlink { target } => current = normalize("", target).ok_or(())?,
                Entry::Other => return Err(()),
            }
        }
        Err(())
    }
}

/// Joins `name` to `dir` lexically (both relative to the archive root) and cleans the result;
/// `None` when it leaves the root or is empty. An absolute `name` starts from the root.
fn normalize(dir: &str, name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    let base = if name.starts_with('/') { "" } else { dir };
    for part in base.split('/').chain(name.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// A window `[pos, end)` of a file, read with `pread` so readers of different windows share one
/// descriptor without sharing a file position.
struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside a file",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_cleans_and_refuses_escape() {
        assert_eq!(normalize("", "./a//b/./c").as_deref(), Some("a/b/c"));
        assert_eq!(normalize("x/y", "../z").as_deref(), Some("x/z"));
        assert_eq!(normalize("x/y", "/abs").as_deref(), Some("abs"));
        assert_eq!(normalize("x", "../../etc"), None);
        assert_eq!(normalize("", "."), None);
    }

    fn tar_with(files: &[(&str, &[u8])], links: &[(&str, &str)]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut b = tar::Builder::new(f.reopen().unwrap());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        for (name, target) in links {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, name, target).unwrap();
        }
        b.finish().unwrap();
        f
    }

    #[test]
    fn open_file_tar_symlink_resolves_inside_archive() {
        let t = tar_with(
            &[("./a/layer.tar", b"hello"), ("manifest.json", b"[]")],
            &[
                ("b/layer.tar", "../a/layer.tar"),
                ("bad", "../../etc/passwd"),
            ],
        );
        let src = Source::open(t.path(), Path::new("/tmp")).unwrap();
        let (mut r, size) = src.open_file("b/layer.tar", "layer").unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!((s.as_str(), size), ("hello", 5));
        assert!(src.has("manifest.json"));
        assert!(!src.has("bad"));
        let err = src.open_file("bad", "layer").err().unwrap();
        assert!(matches!(err, Error::MissingEntry { .. }), "{err}");
    }

    #[test]
    fn open_gzip_archive_is_spooled_and_indexed() {
        let t = tar_with(&[("x", b"data")], &[]);
        let raw = std::fs::read(t.path()).unwrap();
        let gz = tempfile::NamedTempFile::new().unwrap();
        let mut e = flate2::write::GzEncoder::new(gz.reopen().unwrap(), Default::default());
        io::Write::write_all(&mut e, &raw).unwrap();
        e.finish().unwrap();
        let src = Source::open(gz.path(), Path::new("/tmp")).unwrap();
        assert_eq!(src.read_small("x", "file", 100).unwrap(), b"data");
        let err = src.read_small("x", "file", 2).err().unwrap();
        assert!(err.to_string().contains("more than the 2 allowed"), "{err}");
    }
}
