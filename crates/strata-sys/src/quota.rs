//! Project quotas at the kernel boundary: the project id and inherit flag of an inode
//! (`FS_IOC_FSGETXATTR` / `FS_IOC_FSSETXATTR`) and `quotactl(2)` / `quotactl_fd(2)` for the XFS
//! (`Q_X*`, `fs_disk_quota`) and generic (`Q_GETQUOTA`/`Q_SETQUOTA`, `if_dqblk`) interfaces.
//!
//! One function is one kernel call (the `set_project` convenience is a read-modify-write of two).
//! This module never decides which id a layer gets, which interface a filesystem should use,
//! or what an errno means for the user: that is `strata::quota`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::ioctl::{ioctl, opcode, Getter, Opcode, Setter};

/// Quota type of project quotas (`PRJQUOTA` in `<linux/quota.h>`).
pub const PRJQUOTA: u32 = 2;

/// `FS_XFLAG_PROJINHERIT`: new inodes beneath a directory take its project id.
pub const FS_XFLAG_PROJINHERIT: u32 = 0x0000_0200;

/// `struct fsxattr` of `<linux/fs.h>`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsXattr {
    /// `FS_XFLAG_*` flags.
    pub xflags: u32,
    /// Extent size hint.
    pub extsize: u32,
    /// Number of extents (read only).
    pub nextents: u32,
    /// Project id.
    pub projid: u32,
    /// Copy-on-write extent size hint.
    pub cowextsize: u32,
    /// Reserved.
    pub pad: [u8; 8],
}

const FS_IOC_FSGETXATTR: Opcode = opcode::read::<FsXattr>(b'X', 31);
const FS_IOC_FSSETXATTR: Opcode = opcode::write::<FsXattr>(b'X', 32);

/// Reads the extended attributes (flags, project id) of the inode behind `fd`.
///
/// # Errors
/// The ioctl failed (ENOTTY: the filesystem has no such attributes).
pub fn get_fsxattr(fd: impl AsFd) -> io::Result<FsXattr> {
    // SAFETY: FS_IOC_FSGETXATTR is _IOR('X', 31, struct fsxattr); the kernel writes exactly
    // size_of::<FsXattr>() (28) bytes into the Getter's buffer, whose type is the repr(C)
    // mirror of struct fsxattr, and `fd` is a live descriptor borrowed for the call.
    let x = unsafe { ioctl(fd, Getter::<FS_IOC_FSGETXATTR, FsXattr>::new()) }?;
    Ok(x)
}

/// Writes the extended attributes of the inode behind `fd`.
///
/// # Errors
/// The ioctl failed (EOPNOTSUPP on ext4 without the `project` feature, EPERM without
/// CAP_FOWNER/CAP_SYS_ADMIN, EINVAL for a project id the filesystem refuses).
pub fn set_fsxattr(fd: impl AsFd, attr: &FsXattr) -> io::Result<()> {
    // SAFETY: FS_IOC_FSSETXATTR is _IOW('X', 32, struct fsxattr); the kernel reads 28 bytes
    // from the Setter, which owns a copy of `attr` (repr(C) struct fsxattr) for the call's
    // duration; `fd` is a live descriptor.
    unsafe { ioctl(fd, Setter::<FS_IOC_FSSETXATTR, FsXattr>::new(*attr)) }?;
    Ok(())
}

/// Gives the inode behind `fd` project id `projid` and, when `inherit`, the
/// `FS_XFLAG_PROJINHERIT` flag, keeping its other flags (read, then write).
///
/// # Errors
/// Either ioctl failed.
pub fn set_project(fd: impl AsFd, projid: u32, inherit: bool) -> io::Result<()> {
    let fd = fd.as_fd();
    let mut x = get_fsxattr(fd)?;
    x.projid = projid;
    if inherit {
        x.xflags |= FS_XFLAG_PROJINHERIT;
    } else {
        x.xflags &= !FS_XFLAG_PROJINHERIT;
    }
    set_fsxattr(fd, &x)
}

/// What a `quotactl` call addresses: a filesystem by any open fd on it (`quotactl_fd`,
/// Linux 5.14) or by its block device (`quotactl`).
#[derive(Debug, Clone, Copy)]
pub enum QuotaTarget<'a> {
    /// An fd opened (not O_PATH) on any file of the filesystem.
    Fd(BorrowedFd<'a>),
    /// The block device the filesystem is mounted from.
    Device(&'a Path),
}

/// `QCMD(cmd, type)` of `<linux/quota.h>`.
const fn qcmd(cmd: u32, qtype: u32) -> u32 {
    (cmd << 8) | (qtype & 0xff)
}

const fn xqm_cmd(x: u32) -> u32 {
    ((b'X' as u32) << 8) + x
}
const Q_XSETQLIM: u32 = xqm_cmd(4);
const Q_XGETQUOTA: u32 = xqm_cmd(3);
const Q_XGETQSTAT: u32 = xqm_cmd(5);
const Q_GETQUOTA: u32 = 0x80_0007;
const Q_SETQUOTA: u32 = 0x80_0008;

/// One quotactl call. `addr` must point at the structure `cmd` reads or writes.
///
/// # Safety
/// `addr` must be valid for reads and writes of the structure the kernel expects for `cmd`
/// (or null where `cmd` takes none) for the duration of the call.
unsafe fn quotactl(
    target: QuotaTarget<'_>,
    cmd: u32,
    id: u32,
    addr: *mut libc::c_void,
) -> io::Result<()> {
    // The kernel takes the command and id as int and reinterprets the bits.
    let cmd = cmd as libc::c_int;
    let id = id as libc::c_int;
    let rc = match target {
        QuotaTarget::Fd(fd) => {
            // JUSTIFICATION: rustix has no quotactl_fd; libc only has the syscall number.
            // SAFETY: quotactl_fd(fd, cmd, id, addr) takes an int fd that `fd` keeps open
            // for the call; the caller guarantees `addr` matches `cmd`.
            unsafe {
                libc::syscall(
                    libc::SYS_quotactl_fd,
                    fd.as_raw_fd(),
                    cmd as libc::c_uint,
                    id,
                    addr,
                )
            }
        }
        QuotaTarget::Device(dev) => {
            let dev = CString::new(dev.as_os_str().as_bytes())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // JUSTIFICATION: rustix has no quotactl; libc's glibc wrapper is the standard one.
            // SAFETY: `dev` is a NUL-terminated string alive until the call returns; the
            // caller guarantees `addr` matches `cmd`.
            libc::c_long::from(unsafe { libc::quotactl(cmd, dev.as_ptr(), id, addr.cast()) })
        }
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `struct fs_qfilestat` of `<linux/dqblk_xfs.h>`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct FsQfilestat {
    qfs_ino: u64,
    qfs_nblks: u64,
    qfs_nextents: u32,
}

/// `struct fs_quota_stat` of `<linux/dqblk_xfs.h>` (Q_XGETQSTAT).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct FsQuotaStat {
    qs_version: i8,
    qs_flags: u16,
    qs_pad: i8,
    qs_uquota: FsQfilestat,
    qs_gquota: FsQfilestat,
    qs_incoredqs: u32,
    qs_btimelimit: i32,
    qs_itimelimit: i32,
    qs_rtbtimelimit: i32,
    qs_bwarnlimit: u16,
    qs_iwarnlimit: u16,
}

/// Quota state flags of a filesystem (`FS_QUOTA_*` of Q_XGETQSTAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaState {
    /// The raw `qs_flags`.
    pub flags: u16,
}

impl QuotaState {
    const PDQ_ACCT: u16 = 1 << 4;
    const PDQ_ENFD: u16 = 1 << 5;

    /// Project usage is accounted.
    pub fn project_accounting(&self) -> bool {
        self.flags & Self::PDQ_ACCT != 0
    }

    /// Project limits are enforced.
    pub fn project_enforced(&self) -> bool {
        self.flags & Self::PDQ_ENFD != 0
    }
}

/// `quotactl(Q_XGETQSTAT, type)`: which quota types are accounted and enforced. Works on XFS
/// and, through the kernel's translation in `fs/quota/quota.c`, on ext4.
///
/// # Errors
/// ENOSYS: the kernel has no quota support; ESRCH: quotas are off on this filesystem.
pub fn get_state(target: QuotaTarget<'_>, qtype: u32) -> io::Result<QuotaState> {
    let mut st = FsQuotaStat::default();
    // SAFETY: Q_XGETQSTAT writes one struct fs_quota_stat; `st` is its repr(C) mirror and
    // lives on this frame for the whole call.
    unsafe { quotactl(target, qcmd(Q_XGETQSTAT, qtype), 0, (&raw mut st).cast()) }?;
    Ok(QuotaState { flags: st.qs_flags })
}

/// `struct fs_disk_quota` of `<linux/dqblk_xfs.h>`: limits and usage in 512-byte basic blocks.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsDiskQuota {
    /// `FS_DQUOT_VERSION`.
    pub d_version: i8,
    /// `FS_PROJ_QUOTA` and friends.
    pub d_flags: i8,
    /// Which limit fields a Q_XSETQLIM sets (`FS_DQ_*`).
    pub d_fieldmask: u16,
    /// The id.
    pub d_id: u32,
    /// Hard block limit (512-byte blocks).
    pub d_blk_hardlimit: u64,
    /// Soft block limit.
    pub d_blk_softlimit: u64,
    /// Hard inode limit.
    pub d_ino_hardlimit: u64,
    /// Soft inode limit.
    pub d_ino_softlimit: u64,
    /// Blocks used.
    pub d_bcount: u64,
    /// Inodes used.
    pub d_icount: u64,
    /// Inode grace timer.
    pub d_itimer: i32,
    /// Block grace timer.
    pub d_btimer: i32,
    /// Inode warnings.
    pub d_iwarns: u16,
    /// Block warnings.
    pub d_bwarns: u16,
    /// High bits of the inode timer.
    pub d_itimer_hi: i8,
    /// High bits of the block timer.
    pub d_btimer_hi: i8,
    /// High bits of the realtime timer.
    pub d_rtbtimer_hi: i8,
    /// Reserved.
    pub d_padding2: i8,
    /// Realtime hard limit.
    pub d_rtb_hardlimit: u64,
    /// Realtime soft limit.
    pub d_rtb_softlimit: u64,
    /// Realtime blocks used.
    pub d_rtbcount: u64,
    /// Realtime timer.
    pub d_rtbtimer: i32,
    /// Realtime warnings.
    pub d_rtbwarns: u16,
    /// Reserved.
    pub d_padding3: i16,
    /// Reserved.
    pub d_padding4: [u8; 8],
}

impl FsDiskQuota {
    /// `FS_DQUOT_VERSION`.
    pub const VERSION: i8 = 1;
    /// `FS_PROJ_QUOTA`.
    pub const PROJ_QUOTA: i8 = 2;
    /// `FS_DQ_ISOFT`.
    pub const ISOFT: u16 = 1 << 0;
    /// `FS_DQ_IHARD`.
    pub const IHARD: u16 = 1 << 1;
    /// `FS_DQ_BSOFT`.
    pub const BSOFT: u16 = 1 << 2;
    /// `FS_DQ_BHARD`.
    pub const BHARD: u16 = 1 << 3;
}

/// `quotactl(Q_XGETQUOTA, type, id)`: limits and usage of one id.
///
/// # Errors
/// ENOENT: the id has no quota record (XFS); ENOSYS/ESRCH as [`get_state`].
pub fn xfs_get_quota(target: QuotaTarget<'_>, qtype: u32, id: u32) -> io::Result<FsDiskQuota> {
    let mut q = FsDiskQuota::default();
    // SAFETY: Q_XGETQUOTA writes one struct fs_disk_quota (112 bytes); `q` is its repr(C)
    // mirror on this frame for the whole call.
    unsafe { quotactl(target, qcmd(Q_XGETQUOTA, qtype), id, (&raw mut q).cast()) }?;
    Ok(q)
}

/// `quotactl(Q_XSETQLIM, type, id)`: sets the limits named in `q.d_fieldmask`.
///
/// # Errors
/// EPERM without CAP_SYS_ADMIN; ENOSYS/ESRCH as [`get_state`].
pub fn xfs_set_limits(
    target: QuotaTarget<'_>,
    qtype: u32,
    id: u32,
    q: &FsDiskQuota,
) -> io::Result<()> {
    let mut q = *q;
    // SAFETY: Q_XSETQLIM reads one struct fs_disk_quota; `q` is a local repr(C) copy that
    // outlives the call.
    unsafe { quotactl(target, qcmd(Q_XSETQLIM, qtype), id, (&raw mut q).cast()) }
}

/// `struct if_dqblk` of `<linux/quota.h>`: the generic interface (ext4 and other VFS-quota
/// filesystems); block limits in 1 KiB units, space used in bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfDqblk {
    /// Hard block limit (1 KiB blocks).
    pub dqb_bhardlimit: u64,
    /// Soft block limit (1 KiB blocks).
    pub dqb_bsoftlimit: u64,
    /// Space used, in bytes.
    pub dqb_curspace: u64,
    /// Hard inode limit.
    pub dqb_ihardlimit: u64,
    /// Soft inode limit.
    pub dqb_isoftlimit: u64,
    /// Inodes used.
    pub dqb_curinodes: u64,
    /// Block grace time.
    pub dqb_btime: u64,
    /// Inode grace time.
    pub dqb_itime: u64,
    /// Which fields are valid / to set (`QIF_*`).
    pub dqb_valid: u32,
}

impl IfDqblk {
    /// `QIF_BLIMITS`.
    pub const BLIMITS: u32 = 1;
    /// `QIF_ILIMITS`.
    pub const ILIMITS: u32 = 4;
    /// Size of the blocks of `dqb_*limit` (`QIF_DQBLKSIZE`).
    pub const BLOCK_SIZE: u64 = 1024;
}

/// `quotactl(Q_GETQUOTA, type, id)`: limits and usage of one id, generic interface.
///
/// # Errors
/// ENOSYS/ESRCH as [`get_state`].
pub fn get_quota(target: QuotaTarget<'_>, qtype: u32, id: u32) -> io::Result<IfDqblk> {
    let mut q = IfDqblk::default();
    // SAFETY: Q_GETQUOTA writes one struct if_dqblk (72 bytes); `q` is its repr(C) mirror
    // on this frame for the whole call.
    unsafe { quotactl(target, qcmd(Q_GETQUOTA, qtype), id, (&raw mut q).cast()) }?;
    Ok(q)
}

/// `quotactl(Q_SETQUOTA, type, id)`: sets the fields named in `q.dqb_valid`.
///
/// # Errors
/// EPERM without CAP_SYS_ADMIN; ENOSYS/ESRCH as [`get_state`].
pub fn set_quota(target: QuotaTarget<'_>, qtype: u32, id: u32, q: &IfDqblk) -> io::Result<()> {
    let mut q = *q;
    // SAFETY: Q_SETQUOTA reads one struct if_dqblk; `q` is a local repr(C) copy that
    // outlives the call.
    unsafe { quotactl(target, qcmd(Q_SETQUOTA, qtype), id, (&raw mut q).cast()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_kernel_headers() {
        assert_eq!(std::mem::size_of::<FsXattr>(), 28);
        assert_eq!(std::mem::size_of::<FsDiskQuota>(), 112);
        assert_eq!(std::mem::size_of::<IfDqblk>(), 72);
        assert_eq!(std::mem::size_of::<FsQuotaStat>(), 80);
        assert_eq!(FS_IOC_FSGETXATTR, 0x801c_581f);
        assert_eq!(FS_IOC_FSSETXATTR, 0x401c_5820);
        assert_eq!(qcmd(Q_XGETQSTAT, PRJQUOTA), 0x0058_0502);
    }

    #[test]
    fn get_fsxattr_on_tmp_dir_reads_or_reports_unsupported() {
        let dir = std::env::temp_dir();
        let f = std::fs::File::open(&dir).unwrap();
        match get_fsxattr(&f) {
            Ok(x) => assert_eq!(x.pad, [0; 8]),
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOTTY), "{e}"),
        }
    }
}
