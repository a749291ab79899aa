//! Test kit for strata: [`TempHome`] (a fresh home per test whose drop FAILS the test if a mount
//! leaked), root checks that fail loudly under CI, tar and image builders ([`images`]), and the
//! driver conformance suite — Docker's
//! graphtest cases rewritten — that the library tests and every engine adapter reuse.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

pub mod conformance;
pub mod images;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use strata::{Driver, LayerId, Options};

/// A layer id from a literal a test knows to be valid.
pub fn layer_id(s: &str) -> LayerId {
    s.parse().unwrap()
}

/// True when running as root. When not root: panics under `STRATA_REQUIRE_ROOT=1` (CI), else
/// prints why the test is skipped and returns false.
pub fn require_root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var("STRATA_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!("{test} needs root (STRATA_REQUIRE_ROOT=1 forbids skipping)");
    }
    eprintln!("skipping {test}: needs root");
    false
}

/// A fresh home in a temporary directory on a disk filesystem (`/var/tmp`), with a driver.
#[derive(Debug)]
pub struct TempHome {
    /// The driver on it.
    pub driver: Driver,
    dir: Option<tempfile::TempDir>,
}

impl TempHome {
    /// A new home with default options.
    pub fn new() -> TempHome {
        TempHome::with_options(Options::default())
    }

    /// A new home with `options`.
    pub fn with_options(options: Options) -> TempHome {
        let dir = tempfile::Builder::new()
            .prefix("strata-test-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let driver = Driver::open(dir.path().join("home"), options).unwrap();
        TempHome {
            driver,
            dir: Some(dir),
        }
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        self.driver.home()
    }

    /// The directory holding the home (a place for canaries beside it).
    pub fn outside(&self) -> PathBuf {
        self.dir.as_ref().unwrap().path().to_owned()
    }

    /// Mount points beneath the home.
    pub fn mounts(&self) -> Vec<PathBuf> {
        mounts_under(self.home())
    }
}

impl Default for TempHome {
    fn default() -> Self {
        TempHome::new()
    }
}

/// Mount points at or beneath `dir`.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split(' ')
                .nth(4)
                .map(|p| PathBuf::from(p.replace("\\040", " ")))
        })
        .filter(|p| p.starts_with(dir))
        .collect()
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let leaked = self.mounts();
        let _ = self.driver.cleanup();
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
        if !leaked.is_empty() && !std::thread::panicking() {
            panic!("test leaked mounts: {leaked:?}");
        }
    }
}

/// Mode bits (with type bits stripped) and owner of a path, without following symlinks.
pub fn mode_owner(p: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.mode() & 0o7777, m.uid(), m.gid())
}
