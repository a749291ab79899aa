//! The crate's one error type. Every variant names what was being read (archive path, blob,
//! layer) and carries its cause as `source`; callers walk the chain, never match strings.

use std::io;
use std::path::PathBuf;

/// Errors of image loading.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The archive or layout could not be read.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done ("open archive", "read tar header", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The input is neither a docker-save archive nor an OCI archive or layout.
    #[error("{}: not an image archive: {reason}", path.display())]
    NotAnImage {
        /// The input.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// A file the image metadata names is not in the archive.
    #[error("{}: {what} {name:?} is not in the archive", archive.display())]
    MissingEntry {
        /// The archive or layout.
        archive: PathBuf,
        /// What the entry is (manifest, config, layer).
        what: &'static str,
        /// The name as the metadata gives it.
        name: String,
    },
    /// A JSON document of the image is malformed or inconsistent.
    #[error("{}: bad {doc}: {reason}", archive.display())]
    BadMetadata {
        /// The archive or layout.
        archive: PathBuf,
        /// Which document (manifest.json, index.json, config ...).
        doc: String,
        /// What is wrong.
        reason: String,
    },
    /// A digest string that is not `sha256:<64 hex>`.
    #[error("bad digest {digest:?}: {reason}")]
    BadDigest {
        /// The digest as given.
        digest: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Reading (or decompressing) a layer blob failed.
    #[error("read layer {index} ({name}) of {}", archive.display())]
    ReadLayer {
        /// The archive or layout.
        archive: PathBuf,
        /// Position of the layer in the image, from 0 at the base.
        index: usize,
        /// The blob's name in the archive.
        name: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A layer's uncompressed content does not hash to its diff id (or its blob to its digest).
    #[error(
        "layer {index} ({name}): {what} mismatch: the image says {expected}, the content hashes \
         to {actual}; the layer was removed"
    )]
    DigestMismatch {
        /// Position of the layer in the image, from 0 at the base.
        index: usize,
        /// The blob's name in the archive.
        name: String,
        /// `diff id` or `blob digest`.
        what: &'static str,
        /// The digest the metadata gives.
        expected: String,
        /// The digest of the content.
        actual: String,
    },
    /// The store refused an operation.
    #[error("{op} layer {layer}")]
    Store {
        /// The store operation (create, apply, remove).
        op: &'static str,
        /// The layer id.
        layer: String,
        /// The store's error (boxed: it is large).
        #[source]
        source: Box<strata::Error>,
    },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
