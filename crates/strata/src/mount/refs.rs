//! Mount reference counts that hold across threads and processes and survive restarts.
//!
//! The count of a layer lives in `<home>/.strata/mounts/<id>` and is only read or written under
//! the layer's lock. The mount table is the truth it is checked against: a count for a layer that
//! is not mounted is stale (the machine rebooted, or someone unmounted it) and reads as 0; a
//! mounted layer without a count (a home from before a crash, or Docker's) reads as 1, as moby's
//! RefCounter does when it first sees a mounted path.

use std::io;
use std::path::Path;

use crate::layout::{self, Layout};

/// Reference counts of one home.
#[derive(Debug, Clone)]
pub struct Refs {
    layout: Layout,
}

impl Refs {
    /// Counts kept in the home's mount count directory ([`Layout::mounts`]).
    pub fn new(layout: Layout) -> Refs {
        Refs { layout }
    }

    /// The stored count (0 when none is stored).
    ///
    /// # Errors
    /// The count file exists but cannot be read.
    pub fn stored(&self, id: &str) -> io::Result<u64> {
        match std::fs::read_to_string(self.layout.mount_count(id)) {
            Ok(s) => Ok(layout::decode_count(&s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// The effective count given whether the layer is mounted now.
    ///
    /// # Errors
    /// The count file cannot be read.
    pub fn effective(&self, id: &str, mounted: bool) -> io::Result<u64> {
        let n = self.stored(id)?;
        Ok(match (mounted, n) {
            (false, _) => 0,
            (true, 0) => 1,
            (true, n) => n,
        })
    }

    /// Stores `n` (removing the file at 0). Written to a temporary file and renamed, so a crash
    /// never leaves a torn count.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn store(&self, id: &str, n: u64) -> io::Result<()> {
        let f = self.layout.mount_count(id);
        if n == 0 {
            return match std::fs::remove_file(&f) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r,
            };
        }
        let tmp = self.layout.mount_count_tmp(id);
        std::fs::write(&tmp, layout::encode_count(n))?;
        std::fs::rename(&tmp, &f)
    }

    /// Ids that have a stored count.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub fn list(&self) -> io::Result<Vec<String>> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(self.layout.mounts())? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                v.push(name);
            }
        }
        Ok(v)
    }
}

/// Whether something is mounted exactly at `path`.
///
/// # Errors
/// The mount table cannot be read.
pub fn is_mounted(path: &Path) -> io::Result<bool> {
    Ok(strata_sys::mountinfo::read()?
        .iter()
        .any(|m| m.mount_point == path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_effective_trusts_mount_table() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::new(d.path().to_owned());
        std::fs::create_dir_all(layout.mounts()).unwrap();
        let r = Refs::new(layout);
        assert_eq!(r.effective("a", true).unwrap(), 1);
        r.store("a", 3).unwrap();
        assert_eq!(r.effective("a", true).unwrap(), 3);
        assert_eq!(r.effective("a", false).unwrap(), 0);
        r.store("a", 0).unwrap();
        assert_eq!(r.stored("a").unwrap(), 0);
        assert!(r.list().unwrap().is_empty());
    }
}
