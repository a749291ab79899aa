//! Docker's graphdriver conformance cases (moby `daemon/graphdriver/graphtest`), rewritten for
//! strata's [`Driver`]. Each function panics with a message when the driver misbehaves.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use strata::{Driver, LayerId, StorageOpts};

use crate::mode_owner;

fn id(s: &str) -> LayerId {
    s.parse().unwrap()
}

fn entries(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Create empty: a fresh layer mounts as an empty 0755 directory owned by 0:0.
pub fn create_empty(d: &Driver) {
    let e = id("empty");
    d.create(&e, None, &StorageOpts::default()).unwrap();
    assert!(d.exists(&e));
    let root = d.get(&e, "").unwrap();
    assert_eq!(mode_owner(&root), (0o755, 0, 0), "root of an empty layer");
    assert!(entries(&root).is_empty(), "empty layer has entries");
    d.put(&e).unwrap();
    d.remove(&e).unwrap();
    assert!(!d.exists(&e));
}

/// Writes the base content of Docker's createBase into `root`: a directory 0705|sticky owned
/// 1:2 and a file 0222|setuid.
pub fn write_base(root: &Path) {
    let sub = root.join("a subdir");
    std::fs::create_dir(&sub).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o1705)).unwrap();
    std::os::unix::fs::chown(&sub, Some(1), Some(2)).unwrap();
    let f = root.join("a file");
    std::fs::write(&f, b"Some data").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4222)).unwrap();
}

/// Checks what [`write_base`] wrote, seen through `root`.
pub fn verify_base(root: &Path) {
    assert_eq!(mode_owner(&root.join("a subdir")), (0o1705, 1, 2));
    let f = root.join("a file");
    assert_eq!(mode_owner(&f).0, 0o4222);
    assert!(std::fs::symlink_metadata(&f).unwrap().is_file());
    assert_eq!(std::fs::read(&f).unwrap(), b"Some data");
    let want: BTreeSet<String> = ["a subdir", "a file"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(entries(root), want, "exactly the base entries");
}

/// Create base: content written through the mount is exactly what was written.
pub fn create_base(d: &Driver) {
    let b = id("base");
    d.create(&b, None, &StorageOpts::default()).unwrap();
    let root = d.get(&b, "").unwrap();
    write_base(&root);
    verify_base(&root);
    d.put(&b).unwrap();
    d.remove(&b).unwrap();
}

/// Snapshot: a child of base sees base's content.
pub fn create_snapshot(d: &Driver) {
    let b = id("base");
    d.create(&b, None, &StorageOpts::default()).unwrap();
    let root = d.get(&b, "").unwrap();
    write_base(&root);
    d.put(&b).unwrap();
    let s = id("snap");
    d.create(&s, Some(&b), &StorageOpts::default()).unwrap();
    let root = d.get(&s, "").unwrap();
    verify_base(&root);
    d.put(&s).unwrap();
    d.remove(&s).unwrap();
    d.remove(&b).unwrap();
}

/// Deep layer read: a file in the base is read through `depth` stacked layers (the layer and all
/// its parents), each of which adds its own file; the top sees every file.
pub fn deep_layer_read(d: &Driver, depth: usize) {
    let ids: Vec<LayerId> = (0..depth).map(|i| id(&format!("deep-{i:03}"))).collect();
    for (i, l) in ids.iter().enumerate() {
        let parent = i.checked_sub(1).map(|p| &ids[p]);
        if i + 1 == depth {
            d.create_read_write(l, parent, &StorageOpts::default())
                .unwrap();
        } else {
            d.create(l, parent, &StorageOpts::default()).unwrap();
        }
        let root = d.get(l, "").unwrap();
        std::fs::write(root.join(format!("file-{i:03}")), format!("layer {i}")).unwrap();
        if i == 0 {
            std::fs::write(root.join("base-file"), b"deep content").unwrap();
        }
        d.put(l).unwrap();
    }
    let top = ids.last().unwrap();
    let root = d.get(top, "").unwrap();
    assert_eq!(
        std::fs::read(root.join("base-file")).unwrap(),
        b"deep content"
    );
    assert_eq!(entries(&root).len(), depth + 1);
    for i in [0, depth / 2, depth - 1] {
        assert_eq!(
            std::fs::read_to_string(root.join(format!("file-{i:03}"))).unwrap(),
            format!("layer {i}")
        );
    }
    // The top is read-write: a write lands in its own diff only.
    std::fs::write(root.join("top-write"), b"x").unwrap();
    d.put(top).unwrap();
    assert!(d.layout().diff(top).join("top-write").exists());
    // Once committed (a child exists), the whole chain mounts read-only.
    if depth >= 2 {
        let below = &ids[depth - 2];
        let root = d.get(below, "").unwrap();
        assert!(root.join("base-file").exists());
        let err = std::fs::write(root.join("nope"), b"x").unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(30),
            "committed layer must be read-only (EROFS)"
        );
        d.put(below).unwrap();
    }
    for l in ids.iter().rev() {
        d.remove(l).unwrap();
    }
}

/// List: exactly the layers created, no internal names (`l`, `.strata`).
pub fn list_layers(d: &Driver) {
    let want: Vec<LayerId> = ["list-a", "list-b", "list-c"]
        .iter()
        .map(|s| id(s))
        .collect();
    d.create(&want[0], None, &StorageOpts::default()).unwrap();
    d.create(&want[1], Some(&want[0]), &StorageOpts::default())
        .unwrap();
    d.create_read_write(&want[2], Some(&want[1]), &StorageOpts::default())
        .unwrap();
    assert_eq!(d.list().unwrap(), want);
    for l in want.iter().rev() {
        d.remove(l).unwrap();
    }
    assert!(d.list().unwrap().is_empty());
}
