//! Export: Docker overlay2's format (whiteouts, opaque markers, hardlinks, xattrs, owners),
//! determinism, and round trips through our apply and through GNU tar.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use strata_archive::{
    apply, export, export_changes, ApplyOptions, Change, ChangeKind, ExportOptions, IdMapping,
    IdMaps,
};

use crate::common::{assert_same_tree, is_whiteout, require_root, snapshot, write, xattr};

fn list(tar: &[u8]) -> Vec<String> {
    let mut child = Command::new("tar")
        .args(["--numeric-owner", "-tvf", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = tar.to_vec();
    let th = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &data));
    let out = child.wait_with_output().unwrap();
    th.join().unwrap().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            // "perm owner size date time name [-> target]": keep perm, owner, name and target.
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {} {}", f[0], f[1], f[5..].join(" "))
        })
        .collect()
}

fn upper_with_overlay_metadata(root: &Path) {
    write(root, "a/file", b"hello");
    std::fs::create_dir(root.join("opq")).unwrap();
    std::fs::set_permissions(
        root.join("opq"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    rustix::fs::lsetxattr(
        root.join("opq"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    write(root, "opq/new", b"n");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("a/deleted"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    std::fs::hard_link(root.join("a/file"), root.join("z-link")).unwrap();
    rustix::fs::lsetxattr(
        root.join("a/file"),
        "user.k",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::lsetxattr(
        root.join("a/file"),
        "trusted.overlay.origin",
        b"xx",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::lsetxattr(
        root.join("a"),
        "trusted.overlay.impure",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

#[test]
fn export_overlay_upper_writes_docker_format() {
    if !require_root("export_overlay_upper_writes_docker_format") {
        return;
    }
    let up = tempfile::tempdir().unwrap();
    upper_with_overlay_metadata(up.path());
    let mut tar = Vec::new();
    export(up.path(), &mut tar, &ExportOptions::default()).unwrap();
    let got = list(&tar);
    assert_eq!(
        got,
        [
            "drwxr-xr-x 0/0 a/",
            "-rw------- 0/0 a/.wh.deleted",
            "-rw-r--r-- 0/0 a/file",
            "drwxr-x--- 0/0 opq/",
            "-rwxr-x--- 0/0 opq/.wh..wh..opq",
            "-rw-r--r-- 0/0 opq/new",
            "hrw-r--r-- 0/0 z-link link to a/file",
        ],
    );
    let text = String::from_utf8_lossy(&tar);
    assert!(text.contains("SCHILY.xattr.user.k=v"));
    assert!(
        !text.contains("trusted.overlay"),
        "overlay xattrs must not be exported"
    );
    assert!(text.contains("root"), "uname filled from /etc/passwd");
    // Applying it gives the same upper back.
    let back = tempfile::tempdir().unwrap();
    apply(&tar[..], back.path(), &ApplyOptions::default()).unwrap();
    assert!(is_whiteout(&back.path().join("a/deleted")));
    assert_eq!(
        xattr(&back.path().join("opq"), "trusted.overlay.opaque").unwrap(),
        b"y"
    );
    assert_eq!(
        back.path().join("z-link").metadata().unwrap().ino(),
        back.path().join("a/file").metadata().unwrap().ino()
    );
    let mut again = Vec::new();
    export(back.path(), &mut again, &ExportOptions::default()).unwrap();
    assert!(again == tar, "export → apply → export is byte-identical");
}

#[test]
fn export_same_layer_twice_is_byte_identical() {
    if !require_root("export_same_layer_twice_is_byte_identical") {
        return;
    }
    let up = tempfile::tempdir().unwrap();
    upper_with_overlay_metadata(up.path());
    for i in 0..50 {
        write(
            up.path(),
            &format!("many/f{i:03}"),
            format!("{i}").as_bytes(),
        );
    }
    let mut a = Vec::new();
    let mut b = Vec::new();
    export(up.path(), &mut a, &ExportOptions::default()).unwrap();
    // Reading the files must not change the next export (atime is never written).
    std::thread::sleep(std::time::Duration::from_millis(20));
    export(up.path(), &mut b, &ExportOptions::default()).unwrap();
    assert!(a == b);
}

#[test]
fn export_owners_are_mapped_back_to_container_ids() {
    if !require_root("export_owners_are_mapped_back_to_container_ids") {
        return;
    }
    let up = tempfile::tempdir().unwrap();
    write(up.path(), "f", b"x");
    rustix::fs::chown(
        up.path().join("f"),
        Some(rustix::fs::Uid::from_raw(101_000)),
        Some(rustix::fs::Gid::from_raw(100_005)),
    )
    .unwrap();
    let maps = IdMaps {
        uids: vec![IdMapping {
            container_id: 0,
            host_id: 100_000,
            size: 65536,
        }],
        gids: vec![IdMapping {
            container_id: 0,
            host_id: 100_000,
            size: 65536,
        }],
    };
    let mut tar = Vec::new();
    export(
        up.path(),
        &mut tar,
        &ExportOptions {
            id_maps: maps.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(list(&tar), ["-rw-r--r-- 1000/5 f"]);
    // An owner outside the map is an error, not a silent root.
    write(up.path(), "g", b"x");
    let e = export(
        up.path(),
        &mut Vec::new(),
        &ExportOptions {
            id_maps: maps,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            strata_archive::Error::Unmapped {
                kind: "uid",
                id: 0,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn export_long_and_non_ascii_names_round_trip_through_gnu_tar() {
    if !require_root("export_long_and_non_ascii_names_round_trip_through_gnu_tar") {
        return;
    }
    let up = tempfile::tempdir().unwrap();
    let long = format!(
        "{}/{}/{}",
        "a".repeat(100),
        "b".repeat(100),
        "c".repeat(120)
    );
    write(up.path(), &long, b"long");
    write(up.path(), "ünïcödé/файл", b"utf8");
    std::os::unix::fs::symlink("t".repeat(150), up.path().join("longlink")).unwrap();
    let mut tar = Vec::new();
    export(up.path(), &mut tar, &ExportOptions::default()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--same-owner",
            "-p",
            "-xf",
            "-",
            "-C",
        ])
        .arg(out.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &tar).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert_same_tree(
        &snapshot(up.path(), false),
        &snapshot(out.path(), false),
        "gnu tar extraction of our export",
    );
}

#[test]
fn export_changes_writes_entries_and_whiteouts() {
    if !require_root("export_changes_writes_entries_and_whiteouts") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "etc/new", b"new");
    write(root.path(), "etc/changed", b"changed");
    let changes = vec![
        Change {
            path: "/etc/new".into(),
            kind: ChangeKind::Add,
        },
        Change {
            path: "/etc".into(),
            kind: ChangeKind::Modify,
        },
        Change {
            path: "/etc/gone".into(),
            kind: ChangeKind::Delete,
        },
        Change {
            path: "/etc/changed".into(),
            kind: ChangeKind::Modify,
        },
        Change {
            path: "/vanished".into(),
            kind: ChangeKind::Add,
        },
    ];
    let mut tar = Vec::new();
    export_changes(root.path(), &changes, &mut tar, &ExportOptions::default()).unwrap();
    assert_eq!(
        list(&tar),
        [
            "drwxr-xr-x 0/0 etc/",
            "-rw-r--r-- 0/0 etc/changed",
            "-rw------- 0/0 etc/.wh.gone",
            "-rw-r--r-- 0/0 etc/new"
        ]
    );
    let mut again = Vec::new();
    export_changes(root.path(), &changes, &mut again, &ExportOptions::default()).unwrap();
    assert!(again == tar);
}

#[test]
fn export_opaque_root_keeps_its_marker() {
    if !require_root("export_opaque_root_keeps_its_marker") {
        return;
    }
    let a = tempfile::tempdir().unwrap();
    let tar = crate::common::Tar::new()
        .file(".wh..wh..opq", b"")
        .file("f", b"x")
        .end();
    apply(&tar[..], a.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(xattr(a.path(), "trusted.overlay.opaque").unwrap(), b"y");
    // The marker takes the root's permission bits and owner, as a directory's marker does.
    std::fs::set_permissions(
        a.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    std::os::unix::fs::chown(a.path(), Some(1), Some(2)).unwrap();
    let mut out = Vec::new();
    export(a.path(), &mut out, &ExportOptions::default()).unwrap();
    assert_eq!(
        list(&out),
        ["-rwxr-x--- 1/2 .wh..wh..opq", "-rw-r--r-- 0/0 f"]
    );
    let b = tempfile::tempdir().unwrap();
    apply(&out[..], b.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(xattr(b.path(), "trusted.overlay.opaque").unwrap(), b"y");
}

/// GNU tar's verbose listing with names: "owner/group name" per entry.
fn list_names(tar: &[u8]) -> Vec<String> {
    let mut child = Command::new("tar")
        .args(["-tvf", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = tar.to_vec();
    let th = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &data));
    let out = child.wait_with_output().unwrap();
    th.join().unwrap().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {}", f[1], f[5])
        })
        .collect()
}

/// Every entry carries the user and group names of its host owner (as Go's FileInfoHeader),
/// each looked up for its own ids: GNU tar lists them instead of the numbers.
#[test]
fn export_entries_carry_user_and_group_names() {
    if !require_root("export_entries_carry_user_and_group_names") {
        return;
    }
    let up = tempfile::tempdir().unwrap();
    let r = up.path();
    write(r, "d/f", b"x");
    std::os::unix::fs::symlink("d/f", r.join("s")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        r.join("p"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    std::fs::create_dir(r.join("o")).unwrap();
    rustix::fs::lsetxattr(
        r.join("o"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    for (p, u, g) in [
        ("d", 1, 2),
        ("d/f", 1, 1),
        ("s", 2, 0),
        ("p", 0, 3),
        ("o", 3, 1),
    ] {
        std::os::unix::fs::lchown(r.join(p), Some(u), Some(g)).unwrap();
    }
    let mut tar = Vec::new();
    export(r, &mut tar, &ExportOptions::default()).unwrap();
    assert_eq!(
        list_names(&tar),
        [
            "daemon/bin d/",
            "daemon/daemon d/f",
            "sys/daemon o/",
            "sys/daemon o/.wh..wh..opq",
            "root/sys p",
            "bin/root s",
        ]
    );
    // The opaque marker takes its directory's owner, as numbers too.
    assert_eq!(
        list(&tar),
        [
            "drwxr-xr-x 1/2 d/",
            "-rw-r--r-- 1/1 d/f",
            "drwxr-xr-x 3/1 o/",
            "-rwxr-xr-x 3/1 o/.wh..wh..opq",
            "prw-r--r-- 0/3 p",
            "lrwxrwxrwx 2/0 s -> d/f",
        ]
    );
}

/// Character and block devices and fifos are exported with their type and device numbers:
/// GNU tar lists them so and extracts the same nodes.
#[test]
fn export_devices_and_fifos_keep_type_and_numbers() {
    if !require_root("export_devices_and_fifos_keep_type_and_numbers") {
        return;
    }
    let up = tempfile::tempdir().unwrap();
    for (name, ft, dev) in [
        ("blk", rustix::fs::FileType::BlockDevice, (7, 200)),
        ("chr", rustix::fs::FileType::CharacterDevice, (1, 3)),
        ("fifo", rustix::fs::FileType::Fifo, (0, 0)),
    ] {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            up.path().join(name),
            ft,
            rustix::fs::Mode::from_raw_mode(0o640),
            rustix::fs::makedev(dev.0, dev.1),
        )
        .unwrap();
    }
    let mut tar = Vec::new();
    export(up.path(), &mut tar, &ExportOptions::default()).unwrap();
    let mut child = Command::new("tar")
        .args(["--numeric-owner", "-tvf", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &tar).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let listed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {} {}", f[0], f[2], f[5])
        })
        .collect();
    assert_eq!(
        listed,
        [
            "brw-r----- 7,200 blk",
            "crw-r----- 1,3 chr",
            "prw-r----- 0 fifo"
        ]
    );
    let back = tempfile::tempdir().unwrap();
    let st = Command::new("tar")
        .args(["--same-owner", "-p", "-xf", "-", "-C"])
        .arg(back.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            std::io::Write::write_all(c.stdin.as_mut().unwrap(), &tar)?;
            drop(c.stdin.take());
            c.wait()
        })
        .unwrap();
    assert!(st.success());
    assert_same_tree(
        &snapshot(up.path(), false),
        &snapshot(back.path(), false),
        "gnu tar extraction of exported devices",
    );
}

/// A file whose reads fail is an error naming it, not a read retried forever (only EINTR is
/// retried). The failing file is a sysfs attribute whose `show` refuses (the loopback device's
/// link speed reads EINVAL), bind-mounted over a file of the tree.
#[test]
fn export_read_error_fails_naming_the_file() {
    if !require_root("export_read_error_fails_naming_the_file") {
        return;
    }
    let src = Path::new("/sys/class/net/lo/speed");
    let e = std::fs::read(src).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(rustix::io::Errno::INVAL.raw_os_error())
    );
    let up = tempfile::tempdir().unwrap();
    write(up.path(), "a/speed", b"");
    let target = up.path().join("a/speed");
    let st = Command::new("mount")
        .arg("--bind")
        .arg(src)
        .arg(&target)
        .status()
        .unwrap();
    assert!(st.success(), "bind mount {}", src.display());
    let _unmount = crate::common::Mount { path: target };
    let (tx, rx) = std::sync::mpsc::channel();
    let root = up.path().to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(export(&root, std::io::sink(), &ExportOptions::default()));
    });
    // Not a speed limit: a correct export returns at once; this only turns an endless retry
    // into a failure instead of a hung test.
    let r = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("export returned");
    let e = r.unwrap_err();
    assert_eq!(e.to_string(), "read \"a/speed\"");
    assert_eq!(
        e.raw_os_error(),
        Some(rustix::io::Errno::INVAL.raw_os_error())
    );
}

/// A changed path below a non-directory is an error naming the lookup of its directory.
#[test]
fn export_changes_under_a_file_is_a_resolve_error() {
    if !require_root("export_changes_under_a_file_is_a_resolve_error") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "etc/passwd", b"root");
    let changes = [Change {
        path: "/etc/passwd/x".into(),
        kind: ChangeKind::Modify,
    }];
    let e = export_changes(
        root.path(),
        &changes,
        std::io::sink(),
        &ExportOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            &e,
            strata_archive::Error::Resolve {
                what: "the directory of a changed path",
                path,
                ..
            } if path == "etc/passwd"
        ),
        "{e:?}"
    );
    assert_eq!(
        e.raw_os_error(),
        Some(rustix::io::Errno::NOTDIR.raw_os_error())
    );
}

/// An export sink that, once `at` bytes were written, starts a process listing the fds it
/// inherited.
struct SpawningWriter {
    written: usize,
    at: usize,
    seen: Option<String>,
}

impl std::io::Write for SpawningWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written >= self.at && self.seen.is_none() {
            let out = Command::new("ls")
                .args(["-l", "/proc/self/fd/"])
                .output()
                .unwrap();
            self.seen = Some(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn export_fds_are_not_inherited_by_processes_started_meanwhile() {
    if !require_root("export_fds_are_not_inherited_by_processes_started_meanwhile") {
        return;
    }
    // Another thread of the plugin may start a process while a layer is being exported: none
    // of export's fds (directories, the file being read) may leak into it. The file is larger
    // than the export's output buffer, so the sink is written while the file is open.
    let up = tempfile::tempdir().unwrap();
    write(up.path(), "d/e/big", &vec![7u8; 3 << 20]);
    let mut w = SpawningWriter {
        written: 0,
        at: 1,
        seen: None,
    };
    export(up.path(), &mut w, &ExportOptions::default()).unwrap();
    let seen = w.seen.expect("the process was started");
    assert!(w.written > 3 << 20, "the file was exported");
    assert!(seen.contains("/proc/"), "ls listed its fds: {seen}");
    let root = up.path().to_str().unwrap();
    assert!(
        !seen.contains(root),
        "export's fds leaked into a child:\n{seen}"
    );
}
