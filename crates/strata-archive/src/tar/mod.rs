//! The tar format: a streaming reader (V7, USTAR, GNU and PAX, including long names, xattr
//! records and every GNU sparse variant) and a deterministic USTAR/PAX writer.
//! Owns only the byte format; never touches the filesystem.

pub(crate) mod reader;
pub(crate) mod writer;

/// Size of a tar block.
pub(crate) const BLOCK: usize = 512;

/// Largest PAX or GNU long-name payload accepted (as Go's `archive/tar`: 1 MiB).
pub(crate) const MAX_SPECIAL: u64 = 1 << 20;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Regular,
    Hardlink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
    /// Any other typeflag: the byte.
    Other(u8),
}

impl Kind {
    pub(crate) fn from_flag(flag: u8) -> Kind {
        match flag {
            b'0' | 0 | b'7' => Kind::Regular,
            b'1' => Kind::Hardlink,
            b'2' => Kind::Symlink,
            b'3' => Kind::Char,
            b'4' => Kind::Block,
            b'5' => Kind::Dir,
            b'6' => Kind::Fifo,
            other => Kind::Other(other),
        }
    }

    pub(crate) fn flag(self) -> u8 {
        match self {
            Kind::Regular => b'0',
            Kind::Hardlink => b'1',
            Kind::Symlink => b'2',
            Kind::Char => b'3',
            Kind::Block => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
            Kind::Other(f) => f,
        }
    }

    /// As Go's `isHeaderOnlyType`: these carry no data whatever their size field says.
    pub(crate) fn header_only(self) -> bool {
        matches!(
            self,
            Kind::Hardlink | Kind::Symlink | Kind::Char | Kind::Block | Kind::Dir | Kind::Fifo
        )
    }
}

/// A timestamp: seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub(crate) struct Time {
    pub(crate) secs: i64,
    pub(crate) nanos: u32,
}

/// Sparse layout of a file: data fragments `(offset, length)` and the real size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Sparse {
    pub(crate) real_size: u64,
    pub(crate) map: Vec<(u64, u64)>,
}

/// One decoded entry (all extended headers merged in).
#[derive(Debug, Clone, Default)]
pub(crate) struct Entry {
    pub(crate) kind: Option<Kind>,
    pub(crate) name: Vec<u8>,
    pub(crate) link: Vec<u8>,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    /// Bytes of data that follow in the archive for this entry (after any sparse map).
    pub(crate) size: u64,
    pub(crate) mtime: Time,
    pub(crate) atime: Option<Time>,
    pub(crate) devmajor: u32,
    pub(crate) devminor: u32,
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) sparse: Option<Sparse>,
}

impl Entry {
    pub(crate) fn kind(&self) -> Kind {
        self.kind.unwrap_or(Kind::Regular)
    }
}
