//! The plain data types of the public API: id maps, whiteout formats, options, statistics and
//! changes. Pure values: nothing here touches the filesystem.

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

fn map_id(ranges: &[IdMapping], id: u64, to_host: bool) -> Option<u32> {
    if ranges.is_empty() {
        return u32::try_from(id).ok();
    }
    ranges.iter().find_map(|r| {
        let (from, to) = if to_host {
            (r.container_id, r.host_id)
        } else {
            (r.host_id, r.container_id)
        };
        let off = id.checked_sub(u64::from(from))?;
        if off < u64::from(r.size) {
            u32::try_from(u64::from(to) + off).ok()
        } else {
            None
        }
    })
}

impl IdMaps {
    /// Container uid → host uid (`None`: unmapped). Empty maps are the identity.
    pub fn uid_to_host(&self, id: u64) -> Option<u32> {
        map_id(&self.uids, id, true)
    }
    /// Container gid → host gid (`None`: unmapped).
    pub fn gid_to_host(&self, id: u64) -> Option<u32> {
        map_id(&self.gids, id, true)
    }
    /// Host uid → container uid (`None`: unmapped).
    pub fn uid_to_container(&self, id: u32) -> Option<u32> {
        map_id(&self.uids, u64::from(id), false)
    }
    /// Host gid → container gid (`None`: unmapped).
    pub fn gid_to_container(&self, id: u32) -> Option<u32> {
        map_id(&self.gids, u64::from(id), false)
    }
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

impl WhiteoutFormat {
    /// The xattr that marks a directory opaque in this format (`Delete` reads the trusted one).
    pub fn opaque_xattr(self) -> &'static str {
        match self {
            WhiteoutFormat::OverlayUserXattr => "user.overlay.opaque",
            WhiteoutFormat::Overlay | WhiteoutFormat::Delete => "trusted.overlay.opaque",
        }
    }
}

/// Options for [`apply`](crate::apply).
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Id maps applied to tar owners (container → host).
    pub id_maps: IdMaps,
    /// Whiteout representation.
    pub whiteouts: WhiteoutFormat,
}

/// What [`apply`](crate::apply) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Number of tar entries processed.
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Options for [`export`](crate::export).
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

impl ChangeKind {
    /// The letter `docker diff` prints: `C`, `A` or `D`.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modify => 'C',
            ChangeKind::Add => 'A',
            ChangeKind::Delete => 'D',
        }
    }
}

/// One changed path, absolute within the layer (`/etc/passwd`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    /// Absolute path inside the image.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.letter(), self.path)
    }
}
