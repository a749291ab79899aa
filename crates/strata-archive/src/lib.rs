//! Layer tars to and from directories (CONTRACT STUB: being implemented; signatures are fixed).
//!
//! This crate knows nothing of layer ids, the store or mounts. It turns a layer tar into files
//! beneath one directory (never writing outside it), exports a layer's upper directory as a tar
//! in Docker overlay2's format, computes changes and sizes.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// One id mapping range, as in `/proc/self/uid_map`: container ids `container_id..+size`
/// map to host ids `host_id..+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    /// First id inside the container.
    pub container_id: u32,
    /// First id on the host.
    pub host_id: u32,
    /// Number of ids in the range.
    pub size: u32,
}

/// Uid and gid maps of the driver (empty: identity).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMaps {
    /// Uid ranges.
    pub uids: Vec<IdMapping>,
    /// Gid ranges.
    pub gids: Vec<IdMapping>,
}

/// How whiteouts are represented on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhiteoutFormat {
    /// Overlay whiteouts: char device 0/0, opaque xattr `trusted.overlay.opaque=y`.
    #[default]
    Overlay,
    /// Overlay whiteouts with `userxattr`: opaque xattr `user.overlay.opaque=y`.
    OverlayUserXattr,
    /// Apply onto a mounted (merged) tree: a whiteout deletes the path, an opaque marker empties
    /// the directory (Docker's naive ApplyDiff path).
    Delete,
}

/// Options for [`apply`].
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Id maps applied to tar owners (container → host).
    pub id_maps: IdMaps,
    /// Whiteout representation.
    pub whiteouts: WhiteoutFormat,
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Number of tar entries processed.
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Options for [`export`].
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Id maps applied backwards (host → container).
    pub id_maps: IdMaps,
    /// Whiteout representation found on disk.
    pub whiteouts: WhiteoutFormat,
}

/// Kind of a change, numbered as Docker's `archive.ChangeType` (0 modify, 1 add, 2 delete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// Modified (`C`).
    Modify,
    /// Added (`A`).
    Add,
    /// Deleted (`D`).
    Delete,
}

/// One changed path, absolute within the layer (`/etc/passwd`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    /// Absolute path inside the image.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Placeholder until the engine lands.
    #[error("{0} is not implemented yet")]
    Unimplemented(&'static str),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Streams a layer tar (uncompressed) into `target`, which must be an existing directory.
///
/// # Errors
/// A corrupt or hostile archive, or a filesystem error.
pub fn apply(_tar: impl Read, _target: &Path, _opts: &ApplyOptions) -> Result<ApplyStats> {
    Err(Error::Unimplemented("apply"))
}

/// Writes the tar of a layer's upper directory `upper` (native diff).
///
/// # Errors
/// A filesystem error or a write error.
pub fn export(_upper: &Path, _out: impl Write, _opts: &ExportOptions) -> Result<()> {
    Err(Error::Unimplemented("export"))
}

/// Writes a tar of `changes` taken from the mounted tree `root` (naive diff).
///
/// # Errors
/// A filesystem error or a write error.
pub fn export_changes(
    _root: &Path,
    _changes: &[Change],
    _out: impl Write,
    _opts: &ExportOptions,
) -> Result<()> {
    Err(Error::Unimplemented("export_changes"))
}

/// Changes of an upper directory against its lowers (nearest first), walking only `upper`.
///
/// # Errors
/// A filesystem error.
pub fn changes(
    _upper: &Path,
    _lowers: &[PathBuf],
    _whiteouts: WhiteoutFormat,
) -> Result<Vec<Change>> {
    Err(Error::Unimplemented("changes"))
}

/// Changes of tree `new` against tree `old` (None: everything is added), comparing both trees.
///
/// # Errors
/// A filesystem error.
pub fn changes_naive(_new: &Path, _old: Option<&Path>) -> Result<Vec<Change>> {
    Err(Error::Unimplemented("changes_naive"))
}

/// Docker's DiffSize of a directory: the sum of lstat sizes of every non-directory, each inode once.
///
/// # Errors
/// A filesystem error.
pub fn diff_size(_dir: &Path) -> Result<u64> {
    Err(Error::Unimplemented("diff_size"))
}

/// Docker's size of a naive diff: the sum of lstat sizes of the added or modified non-directories
/// of `changes` as found under `root`, each inode once.
///
/// # Errors
/// A filesystem error.
pub fn changes_size(_root: &Path, _changes: &[Change]) -> Result<u64> {
    Err(Error::Unimplemented("changes_size"))
}
