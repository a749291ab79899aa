//! The crate's error type: one enum whose variants name the operation and the path or entry.
//! Never constructed from a bare `io::Error`: every filesystem failure records what was done to
//! which path.

use std::io;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the tar stream failed, or it ended inside an entry.
    #[error("read tar stream at entry {entry}")]
    Read {
        /// Index of the entry being read (0-based).
        entry: u64,
        /// The cause (`UnexpectedEof` for a truncated archive).
        #[source]
        source: io::Error,
    },
    /// A header or extended header is malformed.
    #[error("corrupt tar archive at entry {entry}: {reason}")]
    Corrupt {
        /// Index of the entry being read (0-based).
        entry: u64,
        /// What is wrong.
        reason: String,
    },
    /// An entry's name is unusable (NUL byte, over-long component or path, empty).
    #[error("invalid tar entry name {name:?}: {reason}")]
    InvalidName {
        /// The name as found in the archive (lossy UTF-8).
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An entry's name or hardlink target leads outside the target directory.
    #[error("tar entry {name:?} escapes the target directory")]
    Escape {
        /// The offending name or hardlink target (lossy UTF-8).
        name: String,
    },
    /// An entry type this crate does not extract.
    #[error("unsupported tar entry type {typeflag:?} for {name:?}")]
    UnsupportedType {
        /// The typeflag byte as a char.
        typeflag: char,
        /// The entry's name.
        name: String,
    },
    /// An owner id has no mapping in the driver's id maps.
    #[error("{kind} {id} of {name:?} has no mapping")]
    Unmapped {
        /// `uid` or `gid`.
        kind: &'static str,
        /// The id that could not be mapped.
        id: u64,
        /// The entry or file concerned.
        name: String,
    },
    /// A filesystem operation on a path failed.
    #[error("{op} {path:?}")]
    Fs {
        /// The operation (`create`, `mkdir`, `setxattr`, `lstat`, ...).
        op: &'static str,
        /// The path, relative to the root the operation works beneath.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing the output tar failed.
    #[error("write tar stream")]
    Write {
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// True when the archive tried to reach outside the target directory.
    pub fn is_escape(&self) -> bool {
        matches!(self, Error::Escape { .. })
    }

    /// True when the archive itself is malformed or truncated.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt { .. } | Error::Read { .. })
    }

    /// The OS error number of a filesystem failure, if that is what this is.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Fs { source, .. } | Error::Read { source, .. } | Error::Write { source } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }

    pub(crate) fn fs(op: &'static str, path: &[u8], source: impl Into<io::Error>) -> Self {
        Error::Fs {
            op,
            path: lossy(path),
            source: source.into(),
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
