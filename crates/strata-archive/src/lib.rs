//! Layer tars to and from directories, as Docker's overlay2 gets them from `pkg/archive`.
//!
//! The model: a layer is a directory (overlay's `diff/`, the *upper*) whose deletions are
//! overlay whiteouts (0/0 character devices) and opaque directories (`trusted.overlay.opaque=y`
//! or `user.overlay.opaque=y`). On the wire a layer is a tar in AUFS convention (`.wh.NAME`,
//! `DIR/.wh..wh..opq`). This crate converts between the two:
//!
//! - [`apply`] streams a tar into a directory (ApplyDiff), never writing outside it: every path
//!   is resolved beneath a directory fd of the target with `openat2(RESOLVE_IN_ROOT)`, so `..`,
//!   absolute names and symlinks planted by the archive cannot lead out.
//! - [`export`] writes the tar of an upper directory (native Diff); [`export_changes`] writes
//!   a tar of a list of changes taken from a mounted tree (naive Diff).
//! - [`changes`] lists what `docker diff` shows, walking only the upper directory and looking
//!   paths up in the lowers; [`changes_naive`] compares two whole trees (same result).
//! - [`diff_size`] and [`changes_size`] are Docker's DiffSize.
//!
//! It knows nothing of layer ids, the store or mounts, and never prints.
//!
//! Deliberate differences from moby's `pkg/archive` (each also noted where it is coded):
//! - symlink targets are stored verbatim, even when they point outside the layer (moby rejects
//!   lexically escaping relative targets); no lookup here ever follows one out of the root;
//! - `trusted.overlay.*` / `user.overlay.*` xattrs found in a tar are dropped (they would change
//!   how overlayfs merges the layer), and never exported;
//! - a whiteout keeps its entry's mtime, and a naive export's whiteouts carry time 0 instead of
//!   "now", so the same layer always exports the same bytes;
//! - changes compare all (non-overlay) xattrs, not only `security.capability`, and the fast
//!   upper-only walk returns exactly what the whole-tree comparison returns;
//! - a hardlink entry changes the shared inode's owner only when it differs, so a file
//!   capability set by the first entry is not cleared by `chown`.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use strata_archive::{apply, diff_size, export, ApplyOptions, ExportOptions};
//! let src = tempfile::tempdir()?;
//! std::fs::create_dir(src.path().join("etc"))?;
//! std::fs::write(src.path().join("etc/hostname"), b"strata\n")?;
//! let mut tar = Vec::new();
//! export(src.path(), &mut tar, &ExportOptions::default())?;
//! let dst = tempfile::tempdir()?;
//! let stats = apply(&tar[..], dst.path(), &ApplyOptions::default())?;
//! assert_eq!(stats.entries, 2);
//! assert_eq!(std::fs::read(dst.path().join("etc/hostname"))?, b"strata\n");
//! assert_eq!(diff_size(dst.path())?, 7);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

mod apply;
mod changes;
mod error;
mod export;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod model;
mod names;
pub mod path;
mod size;
mod tar;
mod xattr;

pub use apply::{WHITEOUT_LINK_DIR, WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
pub use error::{Error, Result};
pub use model::{
    ApplyOptions, ApplyStats, Change, ChangeKind, ExportOptions, IdMapping, IdMaps, WhiteoutFormat,
};

/// Streams a layer tar (uncompressed) into `target`, which must be an existing directory.
///
/// Entries are created beneath `target` only; whiteouts become `opts.whiteouts`. On error the
/// directory holds a partial result: the caller stages into a fresh directory and discards it.
///
/// # Errors
/// A corrupt or hostile archive ([`Error::Corrupt`], [`Error::Read`], [`Error::Escape`],
/// [`Error::InvalidName`], [`Error::UnsupportedType`], [`Error::Unmapped`]), or a filesystem
/// error ([`Error::Fs`]).
pub fn apply(tar: impl Read, target: &Path, opts: &ApplyOptions) -> Result<ApplyStats> {
    let _span = tracing::debug_span!("apply", target = %target.display()).entered();
    apply::apply(tar, target, opts)
}

/// Writes the tar of a layer's upper directory `upper` (native diff).
///
/// Byte-identical for an unchanged directory: sorted walk, no atime/ctime, sorted PAX records.
///
/// # Errors
/// A filesystem error, an owner without a mapping, or a write error.
pub fn export(upper: &Path, out: impl Write, opts: &ExportOptions) -> Result<()> {
    let _span = tracing::debug_span!("export", upper = %upper.display()).entered();
    export::export(upper, out, opts)
}

/// Writes a tar of `changes` taken from the mounted tree `root` (naive diff).
///
/// # Errors
/// A filesystem error or a write error.
pub fn export_changes(
    root: &Path,
    changes: &[Change],
    out: impl Write,
    opts: &ExportOptions,
) -> Result<()> {
    let _span = tracing::debug_span!("export_changes", root = %root.display()).entered();
    export::export_changes(root, changes, out, opts)
}

/// Changes of an upper directory against its lowers (nearest first), walking only `upper`.
///
/// Sorted by path; equal to [`changes_naive`] of the merged views.
///
/// # Errors
/// A filesystem error.
pub fn changes(upper: &Path, lowers: &[PathBuf], whiteouts: WhiteoutFormat) -> Result<Vec<Change>> {
    let _span = tracing::debug_span!("changes", upper = %upper.display()).entered();
    changes::changes(upper, lowers, whiteouts)
}

/// Changes of tree `new` against tree `old` (None: everything is added), comparing both trees.
///
/// # Errors
/// A filesystem error.
pub fn changes_naive(new: &Path, old: Option<&Path>) -> Result<Vec<Change>> {
    let _span = tracing::debug_span!("changes_naive", new = %new.display()).entered();
    changes::changes_naive(new, old)
}

/// Docker's DiffSize of a directory: the sum of lstat sizes of every non-directory, each inode once.
///
/// # Errors
/// A filesystem error.
pub fn diff_size(dir: &Path) -> Result<u64> {
    size::diff_size(dir)
}

/// Docker's size of a naive diff: the sum of lstat sizes of the added or modified non-directories
/// of `changes` as found under `root`, each inode once.
///
/// # Errors
/// A filesystem error.
pub fn changes_size(root: &Path, changes: &[Change]) -> Result<u64> {
    size::changes_size(root, changes)
}
