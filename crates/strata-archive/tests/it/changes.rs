//! Changes and sizes: Docker's graphtest conformance cases expressed at the archive level
//! (changes, diff-apply, deep echo), with real overlay mounts; both the fast and the naive
//! computation are checked against the expected list.

use std::path::{Path, PathBuf};

use strata_archive::{
    apply, changes, changes_naive, changes_size, diff_size, export, ApplyOptions, Change,
    ChangeKind, ExportOptions, WhiteoutFormat,
};

use crate::common::{assert_same_tree, lines, require_root, snapshot, write, Mount};

fn c(kind: ChangeKind, p: &str) -> Change {
    Change {
        path: p.to_string(),
        kind,
    }
}

/// A stack of layer directories under one temp dir.
struct Stack {
    dir: tempfile::TempDir,
    layers: Vec<PathBuf>,
}

impl Stack {
    fn new() -> Stack {
        Stack {
            dir: tempfile::tempdir().unwrap(),
            layers: Vec::new(),
        }
    }
    fn add(&mut self) -> PathBuf {
        let p = self.dir.path().join(format!("l{}", self.layers.len()));
        std::fs::create_dir(&p).unwrap();
        self.layers.push(p.clone());
        p
    }
    /// Lowers of the top layer, nearest first.
    fn lowers(&self) -> Vec<PathBuf> {
        self.layers[..self.layers.len() - 1]
            .iter()
            .rev()
            .cloned()
            .collect()
    }
    /// Adds a layer and runs `f` on it mounted read-write over the existing ones.
    fn layer(&mut self, f: impl FnOnce(&Path)) -> PathBuf {
        if self.layers.is_empty() {
            let p = self.add();
            f(&p);
            return p;
        }
        let lowers: Vec<PathBuf> = self.layers.iter().rev().cloned().collect();
        let up = self.add();
        let work = self.dir.path().join(format!("w{}", self.layers.len()));
        std::fs::create_dir(&work).unwrap();
        let lref: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
        let m = Mount::overlay(&self.dir.path().join("m"), &lref, Some((&up, &work)));
        f(&m.path);
        drop(m);
        up
    }
    /// Read-only mount of the given layers (top first).
    fn view(&self, name: &str, layers: &[PathBuf]) -> Mount {
        let lref: Vec<&Path> = layers.iter().map(PathBuf::as_path).collect();
        Mount::overlay(&self.dir.path().join(name), &lref, None)
    }
}

/// Fast changes of the top layer, checked equal to the naive ones over mounted views.
fn both_changes(s: &Stack) -> Vec<Change> {
    let top = s.layers.last().unwrap();
    let lowers = s.lowers();
    let fast = changes(top, &lowers, WhiteoutFormat::Overlay).unwrap();
    let mut all: Vec<PathBuf> = vec![top.clone()];
    all.extend(lowers.iter().cloned());
    let new = s.view("new", &all);
    let naive = if lowers.len() >= 2 {
        let old = s.view("old", &lowers);
        changes_naive(&new.path, Some(&old.path)).unwrap()
    } else {
        changes_naive(&new.path, lowers.first().map(PathBuf::as_path)).unwrap()
    };
    assert_eq!(lines(&fast), lines(&naive), "fast and naive changes differ");
    fast
}

fn content(seed: u64, i: u64) -> Vec<u8> {
    (0..64)
        .map(|k| ((seed * 31 + i * 7 + k) % 251) as u8)
        .collect()
}

fn file_path(i: u64) -> String {
    format!("directory-{}/sub-{}/file-{i}", i % 2, i % 3)
}

fn add_many_files(root: &Path, count: u64, seed: u64) {
    for i in 0..count {
        write(root, &file_path(i), &content(seed, i));
    }
}

#[test]
fn changes_twenty_files_three_levels_are_exact() {
    if !require_root("changes_twenty_files_three_levels_are_exact") {
        return;
    }
    let mut s = Stack::new();
    s.layer(|r| add_many_files(r, 20, 3));
    let mut expected = Vec::new();
    s.layer(|r| {
        for i in 0..20u64 {
            let p = file_path(i);
            match i % 3 {
                0 => {
                    std::fs::write(r.join(&p), content(6, i)).unwrap();
                    expected.push(c(ChangeKind::Modify, &format!("/{p}")));
                }
                1 => {
                    let added = format!("{}/file-6-{i}", Path::new(&p).parent().unwrap().display());
                    std::fs::write(r.join(&added), content(6, i)).unwrap();
                    expected.push(c(ChangeKind::Add, &format!("/{added}")));
                }
                _ => {
                    std::fs::remove_file(r.join(&p)).unwrap();
                    expected.push(c(ChangeKind::Delete, &format!("/{p}")));
                }
            }
        }
    });
    for d in 0..2 {
        expected.push(c(ChangeKind::Modify, &format!("/directory-{d}")));
        for sub in 0..3 {
            expected.push(c(ChangeKind::Modify, &format!("/directory-{d}/sub-{sub}")));
        }
    }
    expected.sort();
    assert_eq!(lines(&both_changes(&s)), lines(&expected));
}

#[test]
fn changes_diff_apply_reproduces_layer_and_size() {
    if !require_root("changes_diff_apply_reproduces_layer_and_size") {
        return;
    }
    let mut s = Stack::new();
    let base = s.layer(|r| {
        add_many_files(r, 50, 3);
        write(
            r,
            "file-remove.txt",
            b"This file should get removed in upper!",
        );
        std::fs::create_dir_all(r.join("var/lib")).unwrap();
        write(r, "var/lib/state", b"s");
    });
    let upper = s.layer(|r| {
        add_many_files(r, 50, 6);
        std::fs::remove_file(r.join("file-remove.txt")).unwrap();
        std::fs::remove_dir_all(r.join("var/lib")).unwrap();
    });
    let size = diff_size(&upper).unwrap();
    assert_eq!(
        size,
        50 * 64,
        "DiffSize: 50 files of 64 bytes, whiteouts count 0"
    );
    let mut tar = Vec::new();
    export(&upper, &mut tar, &ExportOptions::default()).unwrap();
    let fresh = s.dir.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    apply(&tar[..], &fresh, &ApplyOptions::default()).unwrap();
    assert_eq!(diff_size(&fresh).unwrap(), size);
    let m = s.view("check", &[fresh.clone(), base.clone()]);
    for i in 0..50 {
        assert_eq!(
            std::fs::read(m.path.join(file_path(i))).unwrap(),
            content(6, i)
        );
    }
    assert!(!m.path.join("file-remove.txt").exists());
    assert!(!m.path.join("var/lib").exists());
    assert!(m.path.join("var").exists());
    let orig = s.view("orig", &[upper.clone(), base.clone()]);
    assert_same_tree(
        &snapshot(&orig.path, false),
        &snapshot(&m.path, false),
        "merged views",
    );
    // The naive size of the same change set agrees with the native one.
    let ch = changes(&upper, &[base], WhiteoutFormat::Overlay).unwrap();
    assert_eq!(changes_size(&orig.path, &ch).unwrap(), size);
}

#[test]
fn changes_deep_echo_across_three_layers() {
    if !require_root("changes_deep_echo_across_three_layers") {
        return;
    }
    for depth in 1..=10usize {
        let comps: Vec<String> = (0..depth).map(|i| format!("dir{i}")).collect();
        let deep = comps.join("/");
        let mut s = Stack::new();
        s.layer(|_| {});
        s.layer(|r| {
            std::fs::create_dir_all(r.join(&deep)).unwrap();
            std::fs::write(r.join(&deep).join("file"), b"f").unwrap();
        });
        let mut expected: Vec<Change> = (1..=depth)
            .map(|n| c(ChangeKind::Add, &format!("/{}", comps[..n].join("/"))))
            .collect();
        expected.push(c(ChangeKind::Add, &format!("/{deep}/file")));
        expected.sort();
        assert_eq!(
            lines(&both_changes(&s)),
            lines(&expected),
            "depth {depth}, second layer"
        );
        s.layer(|r| {
            std::fs::remove_dir_all(r.join("dir0")).unwrap();
            std::fs::create_dir_all(r.join(&deep)).unwrap();
        });
        let mut expected: Vec<Change> = (1..=depth)
            .map(|n| c(ChangeKind::Modify, &format!("/{}", comps[..n].join("/"))))
            .collect();
        expected.push(c(ChangeKind::Delete, &format!("/{deep}/file")));
        expected.sort();
        assert_eq!(
            lines(&both_changes(&s)),
            lines(&expected),
            "depth {depth}, third layer"
        );
        assert_eq!(
            strata_archive::diff_size(s.layers.last().unwrap()).unwrap(),
            0
        );
    }
}

#[test]
fn changes_naive_without_parent_is_all_adds() {
    if !require_root("changes_naive_without_parent_is_all_adds") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "a/b", b"1");
    write(t.path(), "c", b"22");
    let ch = changes_naive(t.path(), None).unwrap();
    assert_eq!(lines(&ch), ["A /a", "A /a/b", "A /c"]);
    assert_eq!(changes_size(t.path(), &ch).unwrap(), 3);
}

#[test]
fn diff_size_counts_hardlinks_once_and_symlinks() {
    if !require_root("diff_size_counts_hardlinks_once_and_symlinks") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "d/f", &[0u8; 1000]);
    std::fs::hard_link(t.path().join("d/f"), t.path().join("h")).unwrap();
    std::os::unix::fs::symlink("abcdef", t.path().join("s")).unwrap();
    assert_eq!(diff_size(t.path()).unwrap(), 1006);
}

/// Sets a path's mtime (and atime) without following a symlink.
fn set_mtime(p: &Path, secs: i64, nanos: i64) {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn mknod_char(p: &Path, major: u32, minor: u32) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o640),
        rustix::fs::makedev(major, minor),
    )
    .unwrap();
}

/// Each stat field alone (mode, uid, gid, rdev, mtime, size), an xattr alone and a symlink
/// target alone make a Modify; a copy-up with nothing changed, a nanosecond difference against a
/// zero nanosecond field (as moby's `sameFsTimeSpec`) and a directory's own mtime do not.
#[test]
fn changes_each_stat_field_alone_is_a_modify() {
    if !require_root("changes_each_stat_field_alone_is_a_modify") {
        return;
    }
    let files = [
        "f-mode", "f-uid", "f-gid", "f-mtime", "f-size", "f-xattr", "f-same", "f-zero",
    ];
    let mut s = Stack::new();
    s.layer(|r| {
        for f in files {
            write(r, f, b"same");
        }
        mknod_char(&r.join("dev"), 1, 3);
        std::os::unix::fs::symlink("aaaa", r.join("sym")).unwrap();
        std::fs::create_dir(r.join("dir")).unwrap();
        for f in files.iter().chain(&["dev", "sym", "dir"]) {
            set_mtime(&r.join(f), 1000, if *f == "f-zero" { 0 } else { 500 });
        }
    });
    s.layer(|r| {
        let p = |f: &str| r.join(f);
        std::fs::set_permissions(
            p("f-mode"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::lchown(p("f-uid"), Some(1), None).unwrap();
        std::os::unix::fs::lchown(p("f-gid"), None, Some(1)).unwrap();
        // Copied up by the owner change, but the same owner: no change.
        std::os::unix::fs::lchown(p("f-same"), Some(0), Some(0)).unwrap();
        set_mtime(&p("f-mtime"), 1000, 501);
        set_mtime(&p("f-zero"), 1000, 777);
        std::fs::write(p("f-size"), b"longer").unwrap();
        set_mtime(&p("f-size"), 1000, 500);
        rustix::fs::lsetxattr(
            p("f-xattr"),
            "user.k",
            b"v",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        std::fs::remove_file(p("dev")).unwrap();
        mknod_char(&p("dev"), 1, 5);
        set_mtime(&p("dev"), 1000, 500);
        std::fs::remove_file(p("sym")).unwrap();
        std::os::unix::fs::symlink("bbbb", p("sym")).unwrap();
        set_mtime(&p("sym"), 1000, 500);
        set_mtime(&p("dir"), 2000, 0);
    });
    // Every path named above is in the upper layer (copied up or re-created).
    let top = s.layers.last().unwrap();
    for f in files.iter().chain(&["dev", "sym", "dir"]) {
        assert!(
            std::fs::symlink_metadata(top.join(f)).is_ok(),
            "{f} copied up"
        );
    }
    assert_eq!(
        lines(&both_changes(&s)),
        [
            "C /dev",
            "C /f-gid",
            "C /f-mode",
            "C /f-mtime",
            "C /f-size",
            "C /f-uid",
            "C /f-xattr",
            "C /sym",
        ]
    );
}
