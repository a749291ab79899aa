//! Whether a home can have project quotas, and if not, why and what to do: the backing
//! filesystem (`statfs`), its mount options (`/proc/self/mountinfo`) and the kernel's own answer
//! (`quotactl`), each step its own function.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use strata_sys::fs::{fs_magic, magic};
use strata_sys::quota::{self as sys, QuotaState, QuotaTarget, PRJQUOTA};

use super::backend::{Backend, Filesystem};
use super::records::Records;
use super::{QuotaControl, QuotaUnsupported};
use crate::layout::Layout;

/// The mount holding the home, as the probe reports it.
struct MountFacts {
    fs_type: String,
    source: String,
    options: String,
}

impl MountFacts {
    /// "`<home>` is on `<type>` (`<source>`) mounted `<options>`": the start of every answer.
    fn found(&self, home: &Path) -> String {
        format!(
            "{} is on {} ({}) mounted {}",
            home.display(),
            self.fs_type,
            self.source,
            self.options
        )
    }
}

fn unsupported(s: String) -> QuotaUnsupported {
    QuotaUnsupported(s)
}

/// See [`QuotaControl::probe`].
pub(super) fn probe(home: &Path) -> Result<QuotaControl, QuotaUnsupported> {
    let home = std::fs::canonicalize(home)
        .map_err(|e| unsupported(format!("cannot resolve {}: {e}", home.display())))?;
    let fs = fs_magic(&home)
        .map_err(|e| unsupported(format!("cannot statfs {}: {e}", home.display())))?;
    let mount = mount_facts(&home, fs)?;
    let found = mount.found(&home);
    let backend = backend_of(fs, &mount.fs_type).ok_or_else(|| {
        unsupported(format!(
            "{found}: project quotas need XFS or ext4; put the home on XFS mounted with -o \
             pquota, or on ext4 made with `mkfs.ext4 -O project,quota` and mounted with -o \
             prjquota"
        ))
    })?;
    let has_option = mounted_with_quota(backend, &mount.options);

    let home_dir = File::open(&home)
        .map_err(|e| unsupported(format!("cannot open {}: {e}", home.display())))?;
    let (state, device_path) = quota_state(&home_dir, &mount.source)
        .map_err(|e| unsupported(explain_state_error(&found, backend, has_option, &e)))?;
    if !state.project_enforced() {
        let what = if state.project_accounting() {
            "project quotas are accounted but not enforced (pqnoenforce?)"
        } else {
            "project quotas are off"
        };
        return Err(unsupported(format!("{found}: {what}: {}", remedy(backend))));
    }
    let base_id = sys::get_fsxattr(&home_dir)
        .map_err(|e| {
            unsupported(format!(
                "{found}; cannot read the project id of {}: {e}",
                home.display()
            ))
        })?
        .projid;
    let layout = Layout::new(home.clone());
    let records = Records::open(layout.clone()).map_err(|e| {
        unsupported(format!(
            "cannot create the quota records {}: {e}",
            layout.quota_records().display()
        ))
    })?;
    Ok(QuotaControl {
        fs: Filesystem {
            home,
            backend,
            device: mount.source,
            device_path,
        },
        records,
        base_id,
    })
}

/// The innermost mount holding `home` (or, outside any listed mount, what `statfs` says).
fn mount_facts(home: &Path, fs: i64) -> Result<MountFacts, QuotaUnsupported> {
    let mounts = strata_sys::mountinfo::read()
        .map_err(|e| unsupported(format!("cannot read /proc/self/mountinfo: {e}")))?;
    let mount = mounts
        .iter()
        .filter(|m| home.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len());
    Ok(match mount {
        Some(m) => MountFacts {
            fs_type: m.fs_type.clone(),
            source: m.source.clone(),
            options: merge_options(&m.mount_options, &m.super_options),
        },
        None => MountFacts {
            fs_type: strata_sys::fs::fs_name(fs).to_owned(),
            source: "?".into(),
            options: String::new(),
        },
    })
}

/// The quota interface of a filesystem, `None` when it has no project quotas strata drives.
fn backend_of(fs: i64, fs_type: &str) -> Option<Backend> {
    match fs {
        magic::XFS => Some(Backend::Xfs),
        magic::EXTFS if fs_type == "ext4" => Some(Backend::Ext4),
        _ => None,
    }
}

/// Whether the mount options turn project quotas on.
fn mounted_with_quota(backend: Backend, options: &str) -> bool {
    let opts: BTreeSet<&str> = options.split(',').collect();
    match backend {
        Backend::Xfs => ["pquota", "prjquota", "pqnoenforce"]
            .iter()
            .any(|o| opts.contains(o)),
        Backend::Ext4 => opts.contains("prjquota"),
    }
}

/// What to do to get project quotas on this kind of filesystem.
fn remedy(backend: Backend) -> &'static str {
    match backend {
        Backend::Xfs => {
            "mount the filesystem with -o pquota (XFS turns quotas on at mount time only, not on \
             remount; for the root filesystem add rootflags=pquota to the kernel command line)"
        }
        Backend::Ext4 => {
            "give the filesystem the project and quota features (`tune2fs -O project,quota \
             DEVICE` while unmounted, inodes of 256 bytes or more) and mount it with -o prjquota"
        }
    }
}

/// The kernel's project quota state for the filesystem, and the block device to address when
/// the kernel lacks `quotactl_fd` (Linux 5.14; older kernels need the device node).
fn quota_state(home_dir: &File, source: &str) -> io::Result<(QuotaState, Option<PathBuf>)> {
    match sys::get_state(QuotaTarget::Fd(home_dir.as_fd()), PRJQUOTA) {
        Err(e) if is_enosys(&e) && source.starts_with('/') => {
            let state = sys::get_state(QuotaTarget::Device(Path::new(source)), PRJQUOTA)?;
            Ok((state, Some(PathBuf::from(source))))
        }
        r => r.map(|state| (state, None)),
    }
}

/// Why `quotactl` would not report the state, and what to do.
fn explain_state_error(found: &str, backend: Backend, has_option: bool, e: &io::Error) -> String {
    let remedy = remedy(backend);
    if is_enosys(e) {
        let release = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        let mount_note = if has_option {
            String::new()
        } else {
            format!("; the filesystem is also mounted without project quotas: {remedy}")
        };
        format!(
            "{found}; this kernel ({release}) was built without quota support (quotactl: {e}): \
             run on a kernel with CONFIG_QUOTA and CONFIG_QUOTACTL (and CONFIG_XFS_QUOTA for \
             XFS), such as Debian's linux-image-amd64{mount_note}"
        )
    } else if !has_option {
        format!("{found}, without project quotas (quotactl: {e}): {remedy}")
    } else {
        format!("{found}; quotactl refused to report the project quota state: {e}")
    }
}

fn is_enosys(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::NOSYS.raw_os_error())
}

/// Per-mount and per-superblock options as one list, each option once, in order.
fn merge_options(mount: &str, sb: &str) -> String {
    let mut seen = BTreeSet::new();
    let all: Vec<&str> = mount
        .split(',')
        .chain(sb.split(','))
        .filter(|o| !o.is_empty() && seen.insert(*o))
        .collect();
    all.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_options_keeps_each_once_in_order() {
        assert_eq!(
            merge_options("rw,relatime", "rw,attr2,prjquota"),
            "rw,relatime,attr2,prjquota"
        );
        assert_eq!(merge_options("", ""), "");
    }

    #[test]
    fn probe_tmpfs_home_names_filesystem_and_remedy() {
        let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir());
        let dir = dir.unwrap();
        let Err(e) = probe(dir.path()) else {
            // A temp dir on a quota-enabled XFS/ext4 is possible in principle; nothing to check.
            return;
        };
        let msg = e.to_string();
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(
            msg.contains("pquota") || msg.contains("prjquota") || msg.contains("kernel"),
            "{msg}"
        );
    }
}
