//! The filesystem side of project quotas: which quota interface the backing filesystem speaks,
//! how a call addresses it, and reading and setting one project's limits and usage. No policy
//! here (which id, which record); `strata_sys::quota` issues the syscalls.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;

use strata_sys::quota::{self as sys, FsDiskQuota, IfDqblk, QuotaTarget, PRJQUOTA};

use super::QuotaUsage;

/// Which quota interface the backing filesystem speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// XFS mounted with `pquota`/`prjquota`: `Q_XGETQUOTA`/`Q_XSETQLIM`, 512-byte blocks.
    Xfs,
    /// ext4 with the `project` and `quota` features mounted with `prjquota`:
    /// `Q_GETQUOTA`/`Q_SETQUOTA`, 1 KiB block limits.
    Ext4,
}

/// The quota-enabled filesystem holding a home.
#[derive(Debug)]
pub(super) struct Filesystem {
    /// The home (canonical): `quotactl_fd` is addressed through an fd on it.
    pub(super) home: PathBuf,
    pub(super) backend: Backend,
    /// The mount's source (the block device), for `status`.
    pub(super) device: String,
    /// `Some(dev)`: the kernel lacks `quotactl_fd` (before 5.14), address the block device.
    pub(super) device_path: Option<PathBuf>,
}

/// The quota target for a call: an fd on the home or the block device.
pub(super) enum Target {
    Fd(File),
    Device(PathBuf),
}

impl Target {
    fn get(&self) -> QuotaTarget<'_> {
        match self {
            Target::Fd(f) => QuotaTarget::Fd(f.as_fd()),
            Target::Device(d) => QuotaTarget::Device(d),
        }
    }
}

impl Filesystem {
    /// Opens the target quota calls address (open once, use for several calls).
    pub(super) fn target(&self) -> io::Result<Target> {
        Ok(match &self.device_path {
            Some(d) => Target::Device(d.clone()),
            None => Target::Fd(File::open(&self.home)?),
        })
    }

    /// Limits and usage of `projid`, in bytes and inodes.
    pub(super) fn read_quota(&self, target: &Target, projid: u32) -> io::Result<QuotaUsage> {
        match self.backend {
            Backend::Xfs => {
                let q = sys::xfs_get_quota(target.get(), PRJQUOTA, projid)?;
                Ok(QuotaUsage {
                    project_id: projid,
                    size_limit: q.d_blk_hardlimit.saturating_mul(512),
                    size_used: q.d_bcount.saturating_mul(512),
                    inode_limit: q.d_ino_hardlimit,
                    inodes_used: q.d_icount,
                })
            }
            Backend::Ext4 => {
                let q = sys::get_quota(target.get(), PRJQUOTA, projid)?;
                Ok(QuotaUsage {
                    project_id: projid,
                    size_limit: q.dqb_bhardlimit.saturating_mul(IfDqblk::BLOCK_SIZE),
                    size_used: q.dqb_curspace,
                    inode_limit: q.dqb_ihardlimit,
                    inodes_used: q.dqb_curinodes,
                })
            }
        }
    }

    /// Sets (or, with `None`, clears) the block and inode limits of `projid`. Soft limits equal
    /// the hard ones, as moby's quota control sets them.
    pub(super) fn set_limits(
        &self,
        target: &Target,
        projid: u32,
        size: Option<u64>,
        inodes: Option<u64>,
    ) -> io::Result<()> {
        let inodes = inodes.unwrap_or(0);
        match self.backend {
            Backend::Xfs => {
                let blocks = size.unwrap_or(0).div_ceil(512);
                let q = FsDiskQuota {
                    d_version: FsDiskQuota::VERSION,
                    d_flags: FsDiskQuota::PROJ_QUOTA,
                    d_fieldmask: FsDiskQuota::BHARD
                        | FsDiskQuota::BSOFT
                        | FsDiskQuota::IHARD
                        | FsDiskQuota::ISOFT,
                    d_id: projid,
                    d_blk_hardlimit: blocks,
                    d_blk_softlimit: blocks,
                    d_ino_hardlimit: inodes,
                    d_ino_softlimit: inodes,
                    ..FsDiskQuota::default()
                };
                sys::xfs_set_limits(target.get(), PRJQUOTA, projid, &q)
            }
            Backend::Ext4 => {
                let blocks = size.unwrap_or(0).div_ceil(IfDqblk::BLOCK_SIZE);
                let q = IfDqblk {
                    dqb_bhardlimit: blocks,
                    dqb_bsoftlimit: blocks,
                    dqb_ihardlimit: inodes,
                    dqb_isoftlimit: inodes,
                    dqb_valid: IfDqblk::BLIMITS | IfDqblk::ILIMITS,
                    ..IfDqblk::default()
                };
                sys::set_quota(target.get(), PRJQUOTA, projid, &q)
            }
        }
    }
}

/// `ENOENT`: XFS has no quota record for an id that never charged anything.
pub(super) fn is_no_record(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::NOENT.raw_os_error())
}
