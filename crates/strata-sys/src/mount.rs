//! Overlay mounts: the new mount API (`fsopen`/`fsconfig`/`fsmount`/`move_mount`, with
//! `lowerdir+` from Linux 6.8), legacy `mount(2)` (optionally from another working directory),
//! and unmounting. No policy here: the caller decides which path to take.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags,
    MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

/// A failed mount, with the kernel's own log lines when the new API gave them.
#[derive(Debug)]
pub struct MountError {
    /// The step that failed (`fsopen`, `fsconfig lowerdir+ …`, `mount`, …).
    pub call: String,
    /// The errno.
    pub source: io::Error,
    /// Lines the kernel logged for this mount context.
    pub kernel_log: Vec<String>,
}

impl MountError {
    fn new(call: impl Into<String>, source: impl Into<io::Error>) -> MountError {
        MountError {
            call: call.into(),
            source: source.into(),
            kernel_log: Vec::new(),
        }
    }

    /// The errno of the failure.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.call, self.source)?;
        for l in &self.kernel_log {
            write!(f, "; kernel: {l}")?;
        }
        Ok(())
    }
}

impl std::error::Error for MountError {}

/// One overlay mount described for the new mount API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlayConfig {
    /// Lower directories, top-most first.
    pub lowers: Vec<PathBuf>,
    /// Upper and work directory; `None` mounts read-only from lowers alone.
    pub upper_work: Option<(PathBuf, PathBuf)>,
    /// Further `key=value` options (`index=off`, `userxattr`, `context=…`); a key without
    /// value is passed as a flag.
    pub options: Vec<(String, Option<String>)>,
}

/// Drains the log messages the kernel queued on a filesystem context fd.
fn drain_log(fs: &OwnedFd) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    // Each read returns one message; the fd reports ENODATA when the queue is empty.
    for _ in 0..64 {
        match rustix::io::read(fs, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).trim().to_owned()),
        }
    }
    out
}

fn with_log(fs: &OwnedFd, mut e: MountError) -> MountError {
    e.kernel_log = drain_log(fs);
    e
}

/// Mounts an overlay described by `cfg` on `target` with the new mount API, adding each lower
/// with `lowerdir+` (Linux 6.8+), so the number of lowers is bound by the kernel's own limit
/// (500) rather than by a page of option text.
///
/// # Errors
/// The failing step with the kernel's log lines.
pub fn mount_overlay_fd_api(cfg: &OverlayConfig, target: &Path) -> Result<(), MountError> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| MountError::new("fsopen overlay", e))?;
    let set = |key: &str, val: &Path| -> Result<(), MountError> {
        fsconfig_set_string(fs.as_fd(), key, val).map_err(|e| {
            with_log(
                &fs,
                MountError::new(format!("fsconfig {key}={}", val.display()), e),
            )
        })
    };
    for (k, v) in &cfg.options {
        match v {
            Some(v) => fsconfig_set_string(fs.as_fd(), k.as_str(), v.as_str())
                .map_err(|e| with_log(&fs, MountError::new(format!("fsconfig {k}={v}"), e)))?,
            None => rustix::mount::fsconfig_set_flag(fs.as_fd(), k.as_str())
                .map_err(|e| with_log(&fs, MountError::new(format!("fsconfig {k}"), e)))?,
        }
    }
    for l in &cfg.lowers {
        set("lowerdir+", l)?;
    }
    if let Some((upper, work)) = &cfg.upper_work {
        set("upperdir", upper)?;
        set("workdir", work)?;
    }
    fsconfig_create(fs.as_fd())
        .map_err(|e| with_log(&fs, MountError::new("fsconfig create", e)))?;
    let attrs = if cfg.upper_work.is_none() {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let mnt = fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| with_log(&fs, MountError::new("fsmount", e)))?;
    move_mount(
        mnt.as_fd(),
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| MountError::new(format!("move_mount to {}", target.display()), e))
}

/// True when this kernel's overlayfs takes lowers through `lowerdir+` (Linux 6.8+).
///
/// `fsconfig` alone proves nothing: Linux 6.1 accepts the `lowerdir+` key and only refuses it at
/// `FSCONFIG_CMD_CREATE` (EINVAL, with the reason in dmesg only). So the probe configures two
/// lowers, `lower_a` and `lower_b` (existing, distinct, empty directories), and creates the
/// superblock, which is dropped with the fd; nothing is mounted.
pub fn overlay_supports_lowerdir_plus(lower_a: &Path, lower_b: &Path) -> bool {
    let Ok(fs) = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) else {
        return false;
    };
    fsconfig_set_string(fs.as_fd(), "lowerdir+", lower_a).is_ok()
        && fsconfig_set_string(fs.as_fd(), "lowerdir+", lower_b).is_ok()
        && fsconfig_create(fs.as_fd()).is_ok()
}

/// Legacy `mount(2)` of an overlay with option text `data` on `target`.
///
/// When `cwd` is given, the mount runs in a helper thread that first unshares its filesystem
/// attributes and changes into `cwd`, so relative paths in `data` and `target` resolve there while
/// the rest of the process keeps its working directory (moby overlay2 forks a helper for this).
///
/// The caller must keep `data` shorter than a page: the kernel copies one page and silently cuts
/// the rest.
///
/// # Errors
/// The errno of `mount(2)`, or of the `unshare`/`chdir` before it.
pub fn mount_overlay_legacy(
    data: &str,
    target: &Path,
    read_only: bool,
    cwd: Option<&Path>,
) -> Result<(), MountError> {
    let cdata = CString::new(data).map_err(|e| {
        MountError::new("mount data", io::Error::new(io::ErrorKind::InvalidInput, e))
    })?;
    let flags = if read_only {
        MountFlags::RDONLY
    } else {
        MountFlags::empty()
    };
    let Some(cwd) = cwd else {
        return rustix::mount::mount("overlay", target, "overlay", flags, cdata.as_c_str())
            .map_err(|e| MountError::new("mount", e));
    };
    let cwd = cwd.to_owned();
    let target = target.to_owned();
    std::thread::scope(|s| {
        s.spawn(move || -> Result<(), MountError> {
            // SAFETY: CLONE_FS only detaches this helper thread's cwd, root and umask from the
            // rest of the process; the fd table stays shared, which is what unshare_unsafe warns
            // about for CLONE_FILES, not CLONE_FS. The thread ends right after the mount.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }
                .map_err(|e| MountError::new("unshare CLONE_FS", e))?;
            rustix::process::chdir(&cwd)
                .map_err(|e| MountError::new(format!("chdir {}", cwd.display()), e))?;
            rustix::mount::mount("overlay", &target, "overlay", flags, cdata.as_c_str())
                .map_err(|e| MountError::new("mount", e))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(MountError::new(
                "mount helper thread",
                io::Error::other("panicked"),
            ))
        })
    })
}

/// Lazily detaches the mount at `target` (`umount2(MNT_DETACH)`).
///
/// # Errors
/// The errno (EINVAL when nothing is mounted there).
pub fn unmount_detach(target: &Path) -> io::Result<()> {
    rustix::mount::unmount(target, UnmountFlags::DETACH).map_err(io::Error::from)
}
