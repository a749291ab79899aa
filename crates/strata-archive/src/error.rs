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
    #[error("invalid tar entry name {}: {reason}", short(.name))]
    InvalidName {
        /// The name as found in the archive (lossy UTF-8).
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An entry's name or hardlink target leads outside the target directory.
    #[error("tar entry {} escapes the target directory", short(.name))]
    Escape {
        /// The offending name or hardlink target (lossy UTF-8).
        name: String,
    },
    /// An entry type this crate does not extract.
    #[error("unsupported tar entry type {typeflag:?} for {}", short(.name))]
    UnsupportedType {
        /// The typeflag byte as a char.
        typeflag: char,
        /// The entry's name.
        name: String,
    },
    /// An owner id has no mapping in the driver's id maps.
    #[error("{kind} {id} of {} has no mapping", short(.name))]
    Unmapped {
        /// `uid` or `gid`.
        kind: &'static str,
        /// The id that could not be mapped.
        id: u64,
        /// The entry or file concerned.
        name: String,
    },
    /// A filesystem operation on a path failed.
    #[error("{op} {}", short(.path))]
    Fs {
        /// The operation (`create`, `mkdir`, `setxattr`, `lstat`, ...).
        op: &'static str,
        /// The path, relative to the root the operation works beneath.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A path could not be reached beneath the root directory (the directory applied to or
    /// exported): a component is missing or not a directory, or is a symlink that, followed as
    /// if the root were `/`, leads nowhere or not to a directory.
    #[error("resolve {} ({what}): {why}", short(.path))]
    Resolve {
        /// What the path was needed for.
        what: &'static str,
        /// The path, relative to the root.
        path: String,
        /// Which component stopped the lookup, and how (names already shortened).
        why: String,
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
            Error::Fs { source, .. }
            | Error::Resolve { source, .. }
            | Error::Read { source, .. }
            | Error::Write { source } => source.raw_os_error(),
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

/// Names longer than this many characters are shortened in messages.
const SHORT_MAX: usize = 160;
const SHORT_HEAD: usize = 80;
const SHORT_TAIL: usize = 40;

/// A name quoted for a message: in full when short, else its start and end around `…` and its
/// length (a tar name can be kilobytes long; the error value keeps all of it).
pub(crate) fn short(name: &str) -> String {
    let n = name.chars().count();
    if n <= SHORT_MAX {
        return format!("{name:?}");
    }
    let head: String = name.chars().take(SHORT_HEAD).collect();
    let tail: String = name.chars().skip(n - SHORT_TAIL).collect();
    format!("{:?} ({n} characters)", format!("{head}…{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keeps_short_names_and_cuts_long_ones() {
        assert_eq!(short("a/b"), "\"a/b\"");
        let edge = "x".repeat(SHORT_MAX);
        assert_eq!(short(&edge), format!("{edge:?}"));
        let long = format!("{}{}{}", "s".repeat(100), "m".repeat(5000), "e".repeat(100));
        let s = short(&long);
        assert_eq!(
            s,
            format!(
                "\"{}…{}\" (5200 characters)",
                "s".repeat(80),
                "e".repeat(40)
            )
        );
        // Multi-byte characters are never split.
        let wide = "é".repeat(1000);
        assert!(short(&wide).contains("(1000 characters)"));
    }

    #[test]
    fn long_names_are_shortened_in_every_message() {
        let long = format!("start/{}/end", "x".repeat(4000));
        let errs = [
            Error::InvalidName {
                name: long.clone(),
                reason: "too long",
            },
            Error::Escape { name: long.clone() },
            Error::UnsupportedType {
                typeflag: 'Z',
                name: long.clone(),
            },
            Error::Unmapped {
                kind: "uid",
                id: 7,
                name: long.clone(),
            },
            Error::fs("mkdir", long.as_bytes(), io::Error::from_raw_os_error(2)),
            Error::Resolve {
                what: "test",
                path: long.clone(),
                why: String::from("because"),
                source: io::Error::from_raw_os_error(2),
            },
        ];
        for e in errs {
            let m = e.to_string();
            assert!(m.len() < 300, "{m}");
            assert!(m.contains("\"start/xxx") && m.contains("xxx/end\""), "{m}");
            assert!(m.contains("(4010 characters)"), "{m}");
        }
    }
}
