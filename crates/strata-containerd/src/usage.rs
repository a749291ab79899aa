//! Disk usage of a directory tree as containerd's own snapshotters count it: every inode once
//! (hard links deduplicated), the blocks it occupies (`st_blocks × 512`), the root included.
//! Symlinks are counted, never followed; nothing outside the tree is reached.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::meta::Usage;

/// Walks `root` and sums its usage.
///
/// # Errors
/// A directory or entry that cannot be read (an entry that vanishes meanwhile is skipped).
pub fn measure(root: &Path) -> Result<Usage> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Usage { path, source }
    };
    let mut usage = Usage::default();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let meta = std::fs::symlink_metadata(root).map_err(io(root))?;
    usage.size += meta.blocks() * 512;
    usage.inodes += 1;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir != root => continue,
            Err(e) => return Err(io(&dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&path)(e)),
            };
            if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            usage.size += meta.blocks() * 512;
            usage.inodes += 1;
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_counts_inodes_once_and_blocks() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/a"), vec![1u8; 10_000]).unwrap();
        std::fs::hard_link(d.path().join("sub/a"), d.path().join("b")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("link")).unwrap();
        let u = measure(d.path()).unwrap();
        // root, sub, a (b is the same inode), link
        assert_eq!(u.inodes, 4);
        assert!(u.size >= 10_000, "{u:?}");
    }
}
