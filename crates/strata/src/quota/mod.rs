//! Project quotas for read-write layers, as Docker's overlay2 does on XFS (`overlay2.size`,
//! `--storage-opt size=`), and on ext4 too, with inode limits (`inodes`).
//!
//! Each quota-backed layer gets a project id of its own, set on the layer directory with the
//! inherit flag before anything is created in it, so `diff/`, `work/` and every file written
//! through the overlay mount are charged to that id; the id's block and inode limits are set
//! with `quotactl`. XFS is driven through the XFS quota interface (`Q_XSETQLIM`), ext4 through
//! the generic one (`Q_SETQUOTA`).
//!
//! Project ids live in one record per layer ([`Layout::quota_record`](crate::layout::Layout::quota_record), holding the id),
//! allocated under an `flock` on [`Layout::quota_lock`](crate::layout::Layout::quota_lock), so two processes or a
//! restart never hand out the same id. An id is also skipped when the filesystem already
//! charges something to it or has limits for it (another home or tool on the same filesystem).
//!
//! This module owns the choice of ids; `probe` decides whether a home can have quotas,
//! `records` keeps which layer holds which id, `backend` reads and sets one id's limits on
//! the filesystem. It never creates or removes layer directories, and it issues no syscall
//! itself (`strata_sys::quota` does).

mod backend;
mod probe;
mod records;

use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;

use strata_sys::quota as sys;

use crate::error::Error;
use crate::id::LayerId;
use crate::options::StorageOpts;
use backend::{Filesystem, Target};
use records::Records;

/// Why the home's filesystem cannot do project quotas: what was found and what to do.
#[derive(Debug, Clone)]
pub struct QuotaUnsupported(pub String);

impl fmt::Display for QuotaUnsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QuotaUnsupported {}

/// Limits and usage of one quota-backed layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaUsage {
    /// Project id.
    pub project_id: u32,
    /// Byte limit (0: none).
    pub size_limit: u64,
    /// Bytes used.
    pub size_used: u64,
    /// Inode limit (0: none).
    pub inode_limit: u64,
    /// Inodes used.
    pub inodes_used: u64,
}

/// Project-quota control of one home.
#[derive(Debug)]
pub struct QuotaControl {
    fs: Filesystem,
    records: Records,
    /// The home's own project id; layers get ids above it (as moby's quota control does).
    base_id: u32,
}

/// Largest id handed out; XFS and ext4 take 32-bit ids, `u32::MAX` is never valid.
const MAX_PROJECT_ID: u32 = u32::MAX - 1;

impl QuotaControl {
    /// Probes whether `home` supports project quotas: the backing filesystem (`statfs`), its
    /// mount options (`/proc/self/mountinfo`) and the kernel's own answer (`quotactl`).
    ///
    /// # Errors
    /// [`QuotaUnsupported`] saying what was found and what to do.
    pub fn probe(home: &Path) -> Result<QuotaControl, QuotaUnsupported> {
        probe::probe(home)
    }

    /// The block device the quotas live on (for `status`).
    pub fn device(&self) -> String {
        self.fs.device.clone()
    }

    /// Gives `layer_dir` (before its `diff` is created) a fresh project id and `limits`.
    ///
    /// # Errors
    /// The id could not be recorded, set on the directory, or its limits set.
    pub fn set(&self, id: &LayerId, layer_dir: &Path, limits: &StorageOpts) -> Result<(), Error> {
        let fail = |what: String, e: io::Error| Error::Quota {
            id: id.to_string(),
            what,
            source: Some(e),
        };
        let _lock = self.records.lock()?;
        let target = self.fs.target().map_err(|e| fail("open home".into(), e))?;
        let projid = match self.records.read(id)? {
            // A record left by an earlier attempt at the same layer keeps its id.
            Some(p) => p,
            None => {
                let p = self.allocate(id, &target)?;
                self.records.write(id, p)?;
                p
            }
        };
        let result = (|| {
            let dir = File::open(layer_dir)
                .map_err(|e| fail(format!("open layer directory {}", layer_dir.display()), e))?;
            sys::set_project(&dir, projid, true).map_err(|e| {
                fail(
                    format!("set project id {projid} on {}", layer_dir.display()),
                    e,
                )
            })?;
            self.fs
                .set_limits(&target, projid, limits.size, limits.inodes)
                .map_err(|e| fail(format!("set limits of project {projid}"), e))
        })();
        if result.is_err() {
            // The id goes back to the pool; the primary error is what the caller sees.
            self.records.give_back(id);
        }
        result
    }

    /// Releases the project id of a layer being removed (no-op when it had none): clears the
    /// id's limits and removes its record. A layer that moby's overlay2 gave a quota (no record,
    /// see [`QuotaControl::usage`]) has its limits cleared too.
    ///
    /// # Errors
    /// The limits could not be cleared or the record could not be removed.
    pub fn release(&self, id: &LayerId, layer_dir: &Path) -> Result<(), Error> {
        let _lock = self.records.lock()?;
        let recorded = self.records.read(id)?;
        let Some(projid) = recorded.or_else(|| self.moby_project(layer_dir)) else {
            return Ok(());
        };
        let target = self.fs.target().map_err(|e| Error::Quota {
            id: id.to_string(),
            what: "open home".into(),
            source: Some(e),
        })?;
        match self.fs.set_limits(&target, projid, None, None) {
            Ok(()) => {}
            // XFS has no record for an id that never charged anything.
            Err(e) if backend::is_no_record(&e) => {}
            Err(e) => {
                return Err(Error::Quota {
                    id: id.to_string(),
                    what: format!("clear limits of project {projid}"),
                    source: Some(e),
                })
            }
        }
        if recorded.is_none() {
            return Ok(());
        }
        self.records.remove(id)
    }

    /// Limits and usage of a layer, `None` when it has no quota.
    ///
    /// A layer without a record whose directory has a project id of its own above the home's
    /// with the inherit flag was given its quota by moby's overlay2 (a home Docker wrote, which
    /// strata reads as its own): that id is reported.
    ///
    /// # Errors
    /// The record or the quota could not be read, or the directory carries another id than
    /// its record.
    pub fn usage(&self, id: &LayerId, layer_dir: &Path) -> Result<Option<QuotaUsage>, Error> {
        let fail = |what: String, e: io::Error| Error::Quota {
            id: id.to_string(),
            what,
            source: Some(e),
        };
        let projid = match self.records.read(id)? {
            Some(projid) => {
                let dir = File::open(layer_dir).map_err(|e| {
                    fail(format!("open layer directory {}", layer_dir.display()), e)
                })?;
                let on_dir = sys::get_fsxattr(&dir)
                    .map_err(|e| fail(format!("read project id of {}", layer_dir.display()), e))?
                    .projid;
                if on_dir != projid {
                    return Err(Error::Quota {
                        id: id.to_string(),
                        what: format!(
                            "{} has project id {on_dir} but its record says {projid}",
                            layer_dir.display()
                        ),
                        source: None,
                    });
                }
                projid
            }
            None => match self.moby_project(layer_dir) {
                Some(p) => p,
                None => return Ok(None),
            },
        };
        let target = self.fs.target().map_err(|e| fail("open home".into(), e))?;
        let u = self
            .fs
            .read_quota(&target, projid)
            .map_err(|e| fail(format!("read quota of project {projid}"), e))?;
        Ok(Some(u))
    }

    /// The project id moby's overlay2 set on a layer directory it gave a quota: the directory's
    /// own id, above the home's, with the inherit flag (moby: quota.SetQuota on the layer dir).
    fn moby_project(&self, layer_dir: &Path) -> Option<u32> {
        let x = sys::get_fsxattr(File::open(layer_dir).ok()?).ok()?;
        (x.projid > self.base_id && x.xflags & sys::FS_XFLAG_PROJINHERIT != 0).then_some(x.projid)
    }

    /// The project id recorded for a layer, if it has one.
    ///
    /// # Errors
    /// The record exists but cannot be read or is malformed.
    pub fn project_id(&self, id: &LayerId) -> Result<Option<u32>, Error> {
        self.records.read(id)
    }

    /// Every layer with a quota record and its project id, sorted by layer id: for `check` to
    /// find records whose layer is gone (a creation killed midway leaves one).
    ///
    /// # Errors
    /// The records directory cannot be read.
    pub fn records(&self) -> Result<Vec<(String, u32)>, Error> {
        self.records.list()
    }

    /// The lowest id above the home's own that no record holds and the filesystem charges
    /// nothing to. Called with the records lock held.
    fn allocate(&self, id: &LayerId, target: &Target) -> Result<u32, Error> {
        let taken = self.records.taken()?;
        let mut candidate = self.base_id.saturating_add(1).max(1);
        while candidate <= MAX_PROJECT_ID {
            if !taken.contains(&candidate) {
                match self.fs.read_quota(target, candidate) {
                    Ok(u)
                        if u == (QuotaUsage {
                            project_id: candidate,
                            ..Default::default()
                        }) =>
                    {
                        return Ok(candidate)
                    }
                    Ok(_) => {} // in use by something outside this home
                    Err(e) if backend::is_no_record(&e) => return Ok(candidate),
                    Err(e) => {
                        return Err(Error::Quota {
                            id: id.to_string(),
                            what: format!("read quota of candidate project {candidate}"),
                            source: Some(e),
                        })
                    }
                }
            }
            candidate += 1;
        }
        Err(Error::Quota {
            id: id.to_string(),
            what: "no free project id left".into(),
            source: None,
        })
    }
}
