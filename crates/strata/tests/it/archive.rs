//! Docker's graphdriver conformance cases for layer content (moby graphtest: DiffApply, Changes,
//! DeepEcho), through the driver with real mounts.

use std::collections::BTreeSet;
use std::path::Path;

use strata::{Change, ChangeKind, Driver, LayerId, StorageOpts};
use strata_testkit::layer_id as id;
use strata_testkit::{require_root, TempHome};

const NONE: &StorageOpts = &StorageOpts {
    size: None,
    inodes: None,
};

fn write(root: &Path, rel: &str, data: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn change(path: &str, kind: ChangeKind) -> Change {
    Change {
        path: path.to_owned(),
        kind,
    }
}

/// Every path (relative) under `root`, for comparing two trees.
fn tree(root: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            let content = if ft.is_file() {
                std::fs::read_to_string(&p).unwrap_or_default()
            } else {
                String::new()
            };
            out.insert(format!("{rel}:{content}"));
            if ft.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

fn base_with(d: &Driver, name: &str, files: &[&str]) -> LayerId {
    let b = id(name);
    d.create(&b, None, NONE).unwrap();
    let root = d.get(&b, "").unwrap();
    for f in files {
        write(&root, f, f);
    }
    d.put(&b).unwrap();
    b
}

#[test]
fn diff_apply_onto_fresh_child_reproduces_upper() {
    if !require_root("diff_apply_onto_fresh_child_reproduces_upper") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    let base = base_with(
        d,
        "base",
        &[
            "etc/keep",
            "file-to-delete",
            "var/lib/a",
            "var/lib/b/c",
            "var/log/x",
        ],
    );
    let upper = id("upper");
    d.create_read_write(&upper, Some(&base), NONE).unwrap();
    let root = d.get(&upper, "").unwrap();
    write(&root, "new/file1", "one");
    write(&root, "etc/new2", "two");
    std::fs::remove_file(root.join("file-to-delete")).unwrap();
    std::fs::remove_dir_all(root.join("var/lib")).unwrap();
    let merged_upper = tree(&root);
    d.put(&upper).unwrap();

    let size = d.diff_size(&upper, Some(&base)).unwrap();
    let mut tar = Vec::new();
    d.diff(&upper, Some(&base), &mut tar).unwrap();
    let child = id("child");
    d.create(&child, Some(&base), NONE).unwrap();
    let applied = d.apply_diff(&child, Some(&base), tar.as_slice()).unwrap();
    assert_eq!(applied, size, "ApplyDiff size equals DiffSize");
    let root = d.get(&child, "").unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("new/file1")).unwrap(),
        "one"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/new2")).unwrap(),
        "two"
    );
    assert!(!root.join("file-to-delete").exists());
    assert!(!root.join("var/lib").exists());
    assert!(root.join("var/log/x").exists());
    assert_eq!(
        tree(&root),
        merged_upper,
        "the child's merged view equals the upper's"
    );
    d.put(&child).unwrap();
}

#[test]
fn changes_twenty_files_three_levels_exact() {
    if !require_root("changes_twenty_files_three_levels_exact") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    let files: Vec<String> = (0..20)
        .map(|i| format!("d{}/e{}/f{i}", i % 3, i % 2))
        .collect();
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let base = base_with(d, "base", &refs);
    let upper = id("upper");
    d.create_read_write(&upper, Some(&base), NONE).unwrap();
    let root = d.get(&upper, "").unwrap();
    let mut want = BTreeSet::new();
    for (i, f) in files.iter().enumerate() {
        match i % 3 {
            0 => {
                write(&root, f, "changed");
                want.insert(change(&format!("/{f}"), ChangeKind::Modify));
            }
            1 => {
                std::fs::remove_file(root.join(f)).unwrap();
                want.insert(change(&format!("/{f}"), ChangeKind::Delete));
            }
            _ => {
                let added = format!("{f}-added");
                write(&root, &added, "new");
                want.insert(change(&format!("/{added}"), ChangeKind::Add));
            }
        }
        // Parents of a change are reported modified.
        let parts: Vec<&str> = f.split('/').collect();
        want.insert(change(&format!("/{}", parts[0]), ChangeKind::Modify));
        want.insert(change(
            &format!("/{}/{}", parts[0], parts[1]),
            ChangeKind::Modify,
        ));
    }
    d.put(&upper).unwrap();
    let got: BTreeSet<Change> = d
        .changes(&upper, Some(&base))
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(got, want);
    let listed = d.changes(&upper, Some(&base)).unwrap();
    let mut sorted = listed.clone();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(listed, sorted, "changes come sorted by path");
}

#[test]
fn changes_deep_echo_dirs_removed_and_recreated() {
    if !require_root("changes_deep_echo_dirs_removed_and_recreated") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    let deep: String = (0..10)
        .map(|i| format!("l{i}"))
        .collect::<Vec<_>>()
        .join("/");
    let base = base_with(d, "base", &[&format!("{deep}/file")]);
    // Layer 2 removes the whole tree; layer 3 re-creates it with other content.
    let l2 = id("l2");
    d.create(&l2, Some(&base), NONE).unwrap();
    let root = d.get(&l2, "").unwrap();
    std::fs::remove_dir_all(root.join("l0")).unwrap();
    d.put(&l2).unwrap();
    let l3 = id("l3");
    d.create_read_write(&l3, Some(&l2), NONE).unwrap();
    let root = d.get(&l3, "").unwrap();
    write(&root, &format!("{deep}/echo"), "again");
    assert!(
        !root.join(&deep).join("file").exists(),
        "the old file stays deleted"
    );
    d.put(&l3).unwrap();
    let got = d.changes(&l3, Some(&l2)).unwrap();
    let mut want: Vec<Change> = Vec::new();
    let mut path = String::new();
    for i in 0..10 {
        path.push_str(&format!("/l{i}"));
        want.push(change(&path, ChangeKind::Add));
    }
    want.push(change(&format!("/{deep}/echo"), ChangeKind::Add));
    assert_eq!(got, want);
    // And through a diff applied on a fresh child of l2, the same tree appears.
    let mut tar = Vec::new();
    d.diff(&l3, Some(&l2), &mut tar).unwrap();
    let c = id("c");
    d.create(&c, Some(&l2), NONE).unwrap();
    d.apply_diff(&c, Some(&l2), tar.as_slice()).unwrap();
    let root = d.get(&c, "").unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join(&deep).join("echo")).unwrap(),
        "again"
    );
    assert!(!root.join(&deep).join("file").exists());
    d.put(&c).unwrap();
}

#[test]
fn apply_diff_corrupt_tar_leaves_layer_empty() {
    if !require_root("apply_diff_corrupt_tar_leaves_layer_empty") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    let base = base_with(d, "base", &["a"]);
    let up = id("up");
    d.create_read_write(&up, Some(&base), NONE).unwrap();
    let root = d.get(&up, "").unwrap();
    for i in 0..50 {
        write(&root, &format!("f{i}"), &"x".repeat(1000));
    }
    d.put(&up).unwrap();
    let mut tar = Vec::new();
    d.diff(&up, Some(&base), &mut tar).unwrap();
    // Cut the archive in the middle of a file's content, and corrupt a header checksum.
    let mut cut = tar[..tar.len() / 2 + 100].to_vec();
    cut.extend_from_slice(&[0xAB; 512]);
    let victim = id("victim");
    d.create(&victim, Some(&base), NONE).unwrap();
    assert!(d.apply_diff(&victim, Some(&base), cut.as_slice()).is_err());
    assert_eq!(
        std::fs::read_dir(h.home().join("victim/diff"))
            .unwrap()
            .count(),
        0,
        "not half applied"
    );
    assert_eq!(
        std::fs::read_dir(h.home().join(".strata/staging"))
            .unwrap()
            .count(),
        0
    );
    // The layer is still usable: the whole tar applies afterwards.
    d.apply_diff(&victim, Some(&base), tar.as_slice()).unwrap();
    assert_eq!(
        std::fs::read_dir(h.home().join("victim/diff"))
            .unwrap()
            .count(),
        50
    );
}

#[test]
fn diff_same_layer_twice_is_byte_identical() {
    if !require_root("diff_same_layer_twice_is_byte_identical") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    let base = base_with(d, "base", &["x/y", "z"]);
    let up = id("up");
    d.create_read_write(&up, Some(&base), NONE).unwrap();
    let root = d.get(&up, "").unwrap();
    write(&root, "x/new", "n");
    std::fs::remove_file(root.join("z")).unwrap();
    d.put(&up).unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    d.diff(&up, Some(&base), &mut a).unwrap();
    d.diff(&up, Some(&base), &mut b).unwrap();
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

#[test]
fn changes_against_non_parent_falls_back_to_naive() {
    if !require_root("changes_against_non_parent_falls_back_to_naive") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    let base = base_with(d, "base", &["a", "b"]);
    let mid = id("mid");
    d.create(&mid, Some(&base), NONE).unwrap();
    let root = d.get(&mid, "").unwrap();
    write(&root, "m", "mid");
    d.put(&mid).unwrap();
    let top = id("top");
    d.create_read_write(&top, Some(&mid), NONE).unwrap();
    let root = d.get(&top, "").unwrap();
    std::fs::remove_file(root.join("a")).unwrap();
    d.put(&top).unwrap();
    // Against the grandparent: both mid's add and top's delete show.
    let got = d.changes(&top, Some(&base)).unwrap();
    assert_eq!(
        got,
        vec![
            change("/a", ChangeKind::Delete),
            change("/m", ChangeKind::Add)
        ]
    );
    assert!(
        h.mounts().is_empty(),
        "naive comparison released its mounts"
    );
}

#[test]
fn apply_diff_on_mounted_layer_lands_in_the_live_upper() {
    if !require_root("apply_diff_on_mounted_layer_lands_in_the_live_upper") {
        return;
    }
    let h = TempHome::new();
    let d = &h.driver;
    let base = base_with(d, "base", &["a"]);
    let src = id("src");
    d.create_read_write(&src, Some(&base), NONE).unwrap();
    let root = d.get(&src, "").unwrap();
    write(&root, "from-tar", "t");
    d.put(&src).unwrap();
    let mut tar = Vec::new();
    d.diff(&src, Some(&base), &mut tar).unwrap();
    let live = id("live");
    d.create_read_write(&live, Some(&base), NONE).unwrap();
    let root = d.get(&live, "").unwrap();
    d.apply_diff(&live, Some(&base), tar.as_slice()).unwrap();
    // The mounted view sees the applied file and writes still reach the layer's diff.
    assert_eq!(std::fs::read_to_string(root.join("from-tar")).unwrap(), "t");
    write(&root, "after", "x");
    d.put(&live).unwrap();
    assert!(h.home().join("live/diff/after").exists());
    assert!(h.home().join("live/diff/from-tar").exists());
}
