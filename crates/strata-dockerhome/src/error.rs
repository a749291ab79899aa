//! The crate's error type: each variant names the operation and the path or process concerned.

use std::io;
use std::path::PathBuf;

/// Errors of finding and removing orphaned layers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading part of the data root failed.
    #[error("{op} {}", path.display())]
    Io {
        /// The operation ("read layer database", "read directory", ...).
        op: &'static str,
        /// The path it failed on.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The directory does not look like the data root of a dockerd on overlay2.
    #[error("{} is not the data root of a dockerd on overlay2: {why}", root.display())]
    NotADockerRoot {
        /// The data root given.
        root: PathBuf,
        /// What is missing.
        why: String,
    },
    /// A dockerd uses the data root: removing anything now could take a layer it is writing.
    #[error("dockerd (pid {pid}) is using {}: {how}; stop it first", root.display())]
    DaemonRunning {
        /// The data root.
        root: PathBuf,
        /// The daemon's process id.
        pid: u32,
        /// How it was recognised.
        how: String,
    },
    /// The store could not be opened or could not remove a layer.
    #[error("{op} {what}")]
    Store {
        /// The operation.
        op: &'static str,
        /// The home or layer.
        what: String,
        /// The store's error.
        #[source]
        source: Box<strata::Error>,
    },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
