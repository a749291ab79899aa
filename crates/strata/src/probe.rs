//! Host probes run once per [`crate::Driver::open`]: overlay support, kernel version, backing
//! filesystem, d_type, mount API, `index=off`, user namespaces, and (lazily, because it mounts)
//! native diff. Each refusal says what was found and what to do. Never touches layers.

use std::path::{Path, PathBuf};

use strata_sys::fs::{self as sysfs, magic};

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::options::Options;

/// What the host offers, as found at open.
#[derive(Debug, Clone)]
pub struct Probes {
    /// `uname -r`.
    pub kernel: String,
    /// Parsed (major, minor, patch).
    pub kernel_version: (u32, u32, u32),
    /// Backing filesystem name as Docker names it (`extfs`, `xfs`, …).
    pub backing_fs: &'static str,
    /// Whether readdir reports d_type on the home's filesystem.
    pub d_type: bool,
    /// Whether overlayfs takes `lowerdir+` through `fsconfig` (Linux 6.8+).
    pub new_mount_api: bool,
    /// Whether overlay knows the `index` parameter (`index=off` is then passed, as Docker does).
    pub index_off: bool,
    /// Whether the process runs in a user namespace (overlay then needs `userxattr`, 5.11+).
    pub userxattr: bool,
    /// Page size: the most a legacy `mount(2)` copies of the option text.
    pub page_size: usize,
}

fn parse_kernel_version(release: &str) -> (u32, u32, u32) {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

fn overlay_in_proc_filesystems() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .map(|s| s.lines().any(|l| l.trim_end() == "nodev\toverlay"))
        .unwrap_or(false)
}

fn in_user_namespace() -> bool {
    // The initial user namespace maps the whole id range onto itself.
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(m) => {
            let f: Vec<&str> = m.split_whitespace().collect();
            f != ["0", "0", "4294967295"]
        }
        Err(_) => false,
    }
}

/// Creates the home (and missing parents) when it does not exist. A new home is 0700 whatever
/// the umask: layer content is readable only through the engine. An existing home keeps its
/// mode (dockerd makes its own 0710).
fn create_home(home: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if home.is_dir() {
        return Ok(());
    }
    if let Some(parent) = home.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("create parent of home", parent))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(home) {
        Ok(()) => {}
        // Another process made it first: keep what it made.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && home.is_dir() => return Ok(()),
        Err(e) => return Err(Error::io("create home", home)(e)),
    }
    // mkdir's mode passes through the umask, which can only take bits away; set it exactly.
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))
        .map_err(Error::io("chmod", home))
}

impl Probes {
    /// Probes the host for a home at `home` (or its parent when it does not exist yet).
    ///
    /// # Errors
    /// [`Error::NotSupported`] naming what was found and what to do.
    pub fn run(home: &Path, options: &Options) -> Result<Probes> {
        if !overlay_in_proc_filesystems() {
            // As moby overlay2 (supportsOverlay): try loading the module first.
            let _ = std::process::Command::new("modprobe")
                .arg("overlay")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            if !overlay_in_proc_filesystems() {
                return Err(Error::NotSupported {
                    found: "'overlay' is not listed in /proc/filesystems and `modprobe overlay` \
                            did not load it"
                        .into(),
                    hint: "use a kernel built with CONFIG_OVERLAY_FS or install its module".into(),
                });
            }
        }
        let uname = rustix::system::uname();
        let kernel = uname.release().to_string_lossy().into_owned();
        let kernel_version = parse_kernel_version(&kernel);

        if let Ok(meta) = std::fs::metadata(home) {
            if !meta.is_dir() {
                return Err(Error::InvalidHome {
                    path: home.to_owned(),
                    reason: "a file of that name exists; give --home a directory (or a path \
                             that does not exist yet)"
                        .into(),
                });
            }
        }
        // The filesystem the home will live on: the home's, or its nearest existing ancestor's.
        let testdir: PathBuf = home
            .ancestors()
            .find(|a| a.exists())
            .unwrap_or(Path::new("/"))
            .to_owned();
        let fs_magic = sysfs::fs_magic(&testdir).map_err(Error::io("statfs", &testdir))?;
        let backing_fs = sysfs::fs_name(fs_magic);
        match fs_magic {
            magic::AUFS | magic::ECRYPTFS | magic::NFS | magic::OVERLAY | magic::ZFS => {
                return Err(Error::NotSupported {
                    found: format!(
                        "the home {} is on {backing_fs}, which overlayfs cannot use as an upper \
                         layer",
                        home.display()
                    ),
                    hint: "put the home on ext4 or xfs (for example a dedicated volume)".into(),
                });
            }
            magic::BTRFS if kernel_version < (4, 7, 0) && !options.override_kernel_check => {
                return Err(Error::NotSupported {
                    found: format!("btrfs under kernel {kernel}; overlay on btrfs needs 4.7"),
                    hint: "upgrade the kernel or set overlay2.override_kernel_check=true".into(),
                });
            }
            _ => {}
        }
        if kernel_version < (4, 0, 0) && !options.override_kernel_check {
            return Err(Error::NotSupported {
                found: format!("kernel {kernel}; multiple lower directories need 4.0"),
                hint: "upgrade the kernel or set overlay2.override_kernel_check=true".into(),
            });
        }
        // The filesystem is acceptable: create the home so that the d_type probe writes its
        // probe file there rather than beside it.
        create_home(home)?;
        let d_type = sysfs::supports_d_type(home).map_err(Error::io("probe d_type in", home))?;
        let new_mount_api = probe_lowerdir_plus(home)?;
        let userxattr = in_user_namespace();
        if userxattr && kernel_version < (5, 11, 0) {
            return Err(Error::NotSupported {
                found: format!(
                    "running in a user namespace on kernel {kernel}; overlay needs `userxattr` \
                     (5.11) there"
                ),
                hint: "run as real root or upgrade the kernel to 5.11 or later".into(),
            });
        }
        Ok(Probes {
            kernel,
            kernel_version,
            backing_fs,
            d_type,
            new_mount_api,
            index_off: Path::new("/sys/module/overlay/parameters/index").exists(),
            userxattr,
            page_size: rustix::param::page_size(),
        })
    }
}

/// Whether overlay takes `lowerdir+` (6.8+), tried on two scratch directories in the home.
fn probe_lowerdir_plus(home: &Path) -> Result<bool> {
    let scratch = Layout::new(home.to_owned()).mount_probe_scratch();
    let (a, b) = (scratch.join("a"), scratch.join("b"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).map_err(Error::io("create probe directory", d))?;
    }
    let supported = strata_sys::mount::overlay_supports_lowerdir_plus(&a, &b);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(supported)
}

/// Checks that this kernel's overlay gives the upper layer a faithful tar diff: copying up a
/// directory that is opaque in a lower must not make the upper copy opaque (a bug before 4.8), and
/// renaming a lower directory must not create a redirect (which a tar cannot express). As moby
/// overlay2 (check.go: doesSupportNativeDiff).
///
/// # Errors
/// A message saying why the native diff cannot be used.
pub fn native_diff(scratch: &Path, probes: &Probes) -> std::result::Result<(), String> {
    let _ = std::fs::remove_dir_all(scratch);
    let result = native_diff_in(scratch, probes);
    let _ = strata_sys::mount::unmount_detach(&scratch.join("merged"));
    let _ = std::fs::remove_dir_all(scratch);
    result
}

fn native_diff_in(scratch: &Path, probes: &Probes) -> std::result::Result<(), String> {
    let mk =
        |p: &Path| std::fs::create_dir_all(p).map_err(|e| format!("create {}: {e}", p.display()));
    let (l1, l2, up, work, merged) = (
        scratch.join("l1"),
        scratch.join("l2"),
        scratch.join("upper"),
        scratch.join("work"),
        scratch.join("merged"),
    );
    for d in [
        &l1.join("d"),
        &l1.join("d1"),
        &l2.join("d"),
        &up,
        &work,
        &merged,
    ] {
        mk(d)?;
    }
    let prefix = if probes.userxattr { "user" } else { "trusted" };
    let opaque = format!("{prefix}.overlay.opaque");
    rustix::fs::setxattr(
        l2.join("d"),
        opaque.as_str(),
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(|e| format!("set {opaque} on a probe directory: {e}"))?;
    let mut data = format!(
        "lowerdir={}:{},upperdir={},workdir={}",
        l2.display(),
        l1.display(),
        up.display(),
        work.display()
    );
    if probes.index_off {
        data.push_str(",index=off");
    }
    if probes.userxattr {
        data.push_str(",userxattr");
    }
    strata_sys::mount::mount_overlay_legacy(&data, &merged, false, None)
        .map_err(|e| format!("probe mount: {e}"))?;
    std::fs::write(merged.join("d").join("f"), b"")
        .map_err(|e| format!("copy up in probe mount: {e}"))?;
    let mut buf = [0u8; 8];
    if let Ok(n) = rustix::fs::getxattr(up.join("d"), opaque.as_str(), &mut buf) {
        if &buf[..n] == b"y" {
            return Err("the opaque flag is copied up by mistake (fixed in Linux 4.8)".into());
        }
    }
    match std::fs::rename(merged.join("d1"), merged.join("d2")) {
        // Without redirect_dir the kernel refuses to rename a lower directory.
        Err(e) if e.raw_os_error() == Some(libc_exdev()) => Ok(()),
        Err(e) => Err(format!("rename in probe mount: {e}")),
        Ok(()) => {
            let redirect = format!("{prefix}.overlay.redirect");
            match rustix::fs::getxattr(up.join("d2"), redirect.as_str(), &mut [0u8; 256]) {
                Ok(n) if n > 0 => Err("redirect_dir is enabled: renamed directories cannot be \
                                       expressed in a tar diff"
                    .into()),
                _ => Ok(()),
            }
        }
    }
}

fn libc_exdev() -> i32 {
    rustix::io::Errno::XDEV.raw_os_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_kernel_version_handles_distro_suffixes() {
        assert_eq!(parse_kernel_version("6.18.44-fc-v595"), (6, 18, 44));
        assert_eq!(parse_kernel_version("6.1.0-27-amd64"), (6, 1, 0));
        assert_eq!(parse_kernel_version("5.4"), (5, 4, 0));
    }
}
