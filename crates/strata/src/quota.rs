//! Project quotas for read-write layers (STUB: the quota work replaces this file; the driver
//! calls exactly this interface).

use std::path::Path;

use crate::error::Error;
use crate::id::LayerId;
use crate::options::StorageOpts;

/// Why the home's filesystem cannot do project quotas: what was found and what to do.
#[derive(Debug, Clone)]
pub struct QuotaUnsupported(pub String);

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
    _private: (),
}

impl QuotaControl {
    /// Probes whether `home` supports project quotas.
    ///
    /// # Errors
    /// [`QuotaUnsupported`] saying what was found.
    pub fn probe(_home: &Path) -> Result<QuotaControl, QuotaUnsupported> {
        Err(QuotaUnsupported(
            "project quotas are not implemented yet".into(),
        ))
    }

    /// The block device the quotas live on (for `status`).
    pub fn device(&self) -> String {
        String::new()
    }

    /// Gives `layer_dir` (before its `diff` is created) a fresh project id and `limits`.
    ///
    /// # Errors
    /// The quota could not be set.
    pub fn set(&self, id: &LayerId, _layer_dir: &Path, _limits: &StorageOpts) -> Result<(), Error> {
        Err(Error::Quota {
            id: id.to_string(),
            what: "not implemented".into(),
            source: None,
        })
    }

    /// Releases the project id of a layer being removed (no-op when it had none).
    ///
    /// # Errors
    /// The record could not be removed.
    pub fn release(&self, _id: &LayerId, _layer_dir: &Path) -> Result<(), Error> {
        Ok(())
    }

    /// Limits and usage of a layer, `None` when it has no quota.
    ///
    /// # Errors
    /// The quota could not be read.
    pub fn usage(&self, _id: &LayerId, _layer_dir: &Path) -> Result<Option<QuotaUsage>, Error> {
        Ok(None)
    }
}
