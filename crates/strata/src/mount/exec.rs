//! Carries out a [`MountPlan`] through `strata_sys`, and unmounts. No decisions here.

use std::path::Path;

use strata_sys::mount::{self as sysmount, MountError};

use super::plan::MountPlan;

/// Mounts per `plan`. A [`MountPlan::Direct`] mounts nothing.
pub(crate) fn mount(plan: &MountPlan) -> Result<(), MountError> {
    match plan {
        MountPlan::Direct(_) => Ok(()),
        MountPlan::NewApi { config, target } => sysmount::mount_overlay_fd_api(config, target),
        MountPlan::Legacy {
            data,
            target,
            cwd,
            read_only,
        } => sysmount::mount_overlay_legacy(data, target, *read_only, cwd.as_deref()),
    }
}

/// Lazily unmounts `target`; "not mounted" is not an error.
pub(crate) fn unmount(target: &Path) -> std::io::Result<()> {
    match sysmount::unmount_detach(target) {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}
