//! Filesystem facts: the backing filesystem's magic number and name, and whether `readdir`
//! reports file types (d_type). The magic and name are read-only; the d_type probe creates
//! and removes one file in the directory it is asked about.

use std::io;
use std::path::Path;

/// Magic numbers of filesystems the driver cares about (`statfs(2)` `f_type`).
pub mod magic {
    /// aufs
    pub const AUFS: i64 = 0x6175_6673;
    /// btrfs
    pub const BTRFS: i64 = 0x9123_683E;
    /// ecryptfs
    pub const ECRYPTFS: i64 = 0xF15F;
    /// ext2/3/4
    pub const EXTFS: i64 = 0xEF53;
    /// NFS
    pub const NFS: i64 = 0x6969;
    /// overlayfs
    pub const OVERLAY: i64 = 0x794C_7630;
    /// tmpfs
    pub const TMPFS: i64 = 0x0102_1994;
    /// XFS
    pub const XFS: i64 = 0x5846_5342;
    /// ZFS
    pub const ZFS: i64 = 0x2FC1_2FC1;
    /// f2fs
    pub const F2FS: i64 = 0xF2F5_2010;
}

/// `f_type` of the filesystem holding `path`.
///
/// # Errors
/// `statfs(2)` failed.
pub fn fs_magic(path: &Path) -> io::Result<i64> {
    let st = rustix::fs::statfs(path)?;
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as i64)
}

/// The name Docker reports for a filesystem magic (`extfs`, `xfs`, …), or `<unknown>`.
pub fn fs_name(magic: i64) -> &'static str {
    match magic {
        magic::AUFS => "aufs",
        magic::BTRFS => "btrfs",
        magic::ECRYPTFS => "ecryptfs",
        magic::EXTFS => "extfs",
        magic::NFS => "nfs",
        magic::OVERLAY => "overlayfs",
        magic::TMPFS => "tmpfs",
        magic::XFS => "xfs",
        magic::ZFS => "zfs",
        magic::F2FS => "f2fs",
        _ => "<unknown>",
    }
}

/// Whether `readdir` in `dir` reports entry types (d_type). Creates and removes one probe
/// file in `dir`.
///
/// # Errors
/// The probe file could not be created or the directory not read.
pub fn supports_d_type(dir: &Path) -> io::Result<bool> {
    let probe = dir.join(format!(".strata-dtype-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    let result = (|| {
        let fd = rustix::fs::open(
            dir,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        let name = probe
            .file_name()
            .map(|n| n.as_encoded_bytes().to_vec())
            .unwrap_or_default();
        for entry in rustix::fs::Dir::read_from(&fd)? {
            let entry = entry?;
            if entry.file_name().to_bytes() == name.as_slice() {
                return Ok(entry.file_type() != rustix::fs::FileType::Unknown);
            }
        }
        Ok(false)
    })();
    let _ = std::fs::remove_file(&probe);
    result
}
