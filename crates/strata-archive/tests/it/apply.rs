//! Apply: every entry kind, metadata, extended headers, sparse files, whiteouts, replacement
//! rules, end-of-archive handling, and a differential run against GNU tar.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use strata_archive::{apply, ApplyOptions, IdMapping, IdMaps, WhiteoutFormat};

use crate::common::{assert_same_tree, h, is_whiteout, require_root, snapshot, xattr, Tar};

fn md(p: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(p).unwrap()
}

#[test]
fn apply_every_entry_kind_creates_it_with_metadata() {
    if !require_root("apply_every_entry_kind_creates_it_with_metadata") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .entry(h("d/", b'5').mode(0o1777).owner(7, 8).mtime(1_000_000), b"")
        .entry(
            h("d/suid", b'0')
                .mode(0o4755)
                .owner(1000, 1001)
                .mtime(1_234_567),
            b"#!/bin/sh\n",
        )
        .entry(h("d/sgid", b'0').mode(0o2711), b"")
        .entry(
            h("d/link", b'2').link("suid").owner(3, 4).mtime(1_111_111),
            b"",
        )
        .entry(
            h("d/hard", b'1')
                .link("d/suid")
                .mode(0o4755)
                .owner(1000, 1001)
                .mtime(1_234_567),
            b"",
        )
        .entry(h("d/null", b'3').dev(1, 3).mode(0o666), b"")
        .entry(h("d/loop", b'4').dev(7, 0).mode(0o660).owner(0, 6), b"")
        .entry(h("d/fifo", b'6').mode(0o600), b"")
        .end();
    let stats = apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(stats.entries, 8);
    assert_eq!(stats.bytes, 10);
    let r = t.path();
    let d = md(&r.join("d"));
    assert!(d.is_dir());
    assert_eq!(
        (d.mode() & 0o7777, d.uid(), d.gid(), d.mtime()),
        (0o1777, 7, 8, 1_000_000)
    );
    let s = md(&r.join("d/suid"));
    assert_eq!(
        (s.mode() & 0o7777, s.uid(), s.gid(), s.mtime()),
        (0o4755, 1000, 1001, 1_234_567)
    );
    assert_eq!(std::fs::read(r.join("d/suid")).unwrap(), b"#!/bin/sh\n");
    assert_eq!(md(&r.join("d/sgid")).mode() & 0o7777, 0o2711);
    let l = md(&r.join("d/link"));
    assert!(l.file_type().is_symlink());
    assert_eq!((l.uid(), l.gid(), l.mtime()), (3, 4, 1_111_111));
    assert_eq!(
        std::fs::read_link(r.join("d/link")).unwrap(),
        Path::new("suid")
    );
    assert_eq!(md(&r.join("d/hard")).ino(), s.ino());
    assert_eq!(md(&r.join("d/hard")).nlink(), 2);
    let n = md(&r.join("d/null"));
    assert!(n.file_type().is_char_device());
    assert_eq!(
        (
            rustix::fs::major(n.rdev()),
            rustix::fs::minor(n.rdev()),
            n.mode() & 0o7777
        ),
        (1, 3, 0o666)
    );
    let b = md(&r.join("d/loop"));
    assert!(b.file_type().is_block_device());
    assert_eq!(
        (rustix::fs::major(b.rdev()), b.gid(), b.mode() & 0o7777),
        (7, 6, 0o660)
    );
    assert!(md(&r.join("d/fifo")).file_type().is_fifo());
}

#[test]
fn apply_directory_mtime_is_set_after_children() {
    if !require_root("apply_directory_mtime_is_set_after_children") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .entry(h("a/", b'5').mtime(42), b"")
        .entry(h("a/b/", b'5').mtime(43), b"")
        .file("a/b/c", b"x")
        .file("a/z", b"y")
        .end();
    apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(md(&t.path().join("a")).mtime(), 42);
    assert_eq!(md(&t.path().join("a/b")).mtime(), 43);
}

#[test]
fn apply_pax_and_gnu_long_names_are_used() {
    if !require_root("apply_pax_and_gnu_long_names_are_used") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let long_a = format!("{}/{}", "p".repeat(150), "f".repeat(200));
    let long_b = format!("{}/{}", "g".repeat(120), "h".repeat(180));
    let mut pre = h("file-in-prefix", b'0');
    pre.prefix = "u".repeat(150).into_bytes();
    let tar = Tar::new()
        .pax(&[(b"path", long_a.as_bytes()), (b"mtime", b"1700000000.25")])
        .file("ignored", b"pax")
        .gnu_long(b'L', long_b.as_bytes())
        .file("ignored-too", b"gnu")
        .gnu_long(b'K', long_b.as_bytes())
        .hardlink("hl", "ignored")
        .entry(pre, b"prefix")
        .end();
    apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    let a = t.path().join(&long_a);
    assert_eq!(std::fs::read(&a).unwrap(), b"pax");
    assert_eq!(
        (md(&a).mtime(), md(&a).mtime_nsec()),
        (1_700_000_000, 250_000_000)
    );
    assert_eq!(std::fs::read(t.path().join(&long_b)).unwrap(), b"gnu");
    assert_eq!(
        md(&t.path().join("hl")).ino(),
        md(&t.path().join(&long_b)).ino()
    );
    let p = t.path().join("u".repeat(150)).join("file-in-prefix");
    assert_eq!(std::fs::read(p).unwrap(), b"prefix");
    assert!(!t.path().join("ignored").exists());
}

#[test]
fn apply_pax_xattrs_including_capability_are_set() {
    if !require_root("apply_pax_xattrs_including_capability_are_set") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // cap_net_bind_service+ep, VFS_CAP_REVISION_2.
    let cap: &[u8] = &[0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let tar = Tar::new()
        .pax(&[
            (b"SCHILY.xattr.security.capability", cap),
            (b"SCHILY.xattr.user.note", b"hello"),
        ])
        .entry(h("bin/ping", b'0').mode(0o755).owner(0, 0), b"ELF")
        .pax(&[(b"SCHILY.xattr.trusted.something", b"t")])
        .dir("dir")
        .end();
    apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    let p = t.path().join("bin/ping");
    assert_eq!(xattr(&p, "security.capability").unwrap(), cap);
    assert_eq!(xattr(&p, "user.note").unwrap(), b"hello");
    assert_eq!(
        xattr(&t.path().join("dir"), "trusted.something").unwrap(),
        b"t"
    );
    // Implied parent directory: 0755, root.
    assert_eq!(md(&t.path().join("bin")).mode() & 0o7777, 0o755);
}

#[test]
fn apply_owners_are_mapped_to_host_ids() {
    if !require_root("apply_owners_are_mapped_to_host_ids") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let maps = IdMaps {
        uids: vec![IdMapping {
            container_id: 0,
            host_id: 100_000,
            size: 65536,
        }],
        gids: vec![IdMapping {
            container_id: 0,
            host_id: 200_000,
            size: 65536,
        }],
    };
    let o = ApplyOptions {
        id_maps: maps,
        ..Default::default()
    };
    let tar = Tar::new()
        .entry(h("a/f", b'0').owner(1000, 5), b"")
        .file(".wh.gone", b"")
        .end();
    apply(&tar[..], t.path(), &o).unwrap();
    let f = md(&t.path().join("a/f"));
    assert_eq!((f.uid(), f.gid()), (101_000, 200_005));
    let a = md(&t.path().join("a"));
    assert_eq!(
        (a.uid(), a.gid()),
        (100_000, 200_000),
        "implied dir owned by mapped root"
    );
    let w = md(&t.path().join("gone"));
    assert_eq!((w.uid(), w.gid()), (100_000, 200_000));
}

/// GNU tar is the differential baseline; under STRATA_REQUIRE_ROOT=1 its absence fails.
fn gnu_tar_available() -> bool {
    let ok = Command::new("tar")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"tar (GNU tar)"));
    if !ok && std::env::var("STRATA_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!("GNU tar is required for the differential tests");
    }
    ok
}

#[test]
fn apply_gnu_sparse_files_in_every_format_match_source() {
    if !require_root("apply_gnu_sparse_files_in_every_format_match_source") || !gnu_tar_available()
    {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let f = src.path().join("sparse");
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::create(&f).unwrap();
        file.write_all_at(b"head", 0).unwrap();
        file.write_all_at(&[9u8; 10000], 1 << 20).unwrap();
        // More than 4 fragments: old GNU sparse needs extension headers.
        for i in 0..30u64 {
            file.write_all_at(&[i as u8 + 1; 100], (2 << 20) + i * 65536)
                .unwrap();
        }
        file.write_all_at(b"tail", 5 << 20).unwrap();
        file.set_len((8 << 20) + 3).unwrap();
    }
    let want = std::fs::read(&f).unwrap();
    for args in [
        vec!["--format=gnu"],
        vec!["--format=posix", "--sparse-version=0.0"],
        vec!["--format=posix", "--sparse-version=0.1"],
        vec!["--format=posix", "--sparse-version=1.0"],
    ] {
        let out = Command::new("tar")
            .arg("-C")
            .arg(src.path())
            .arg("--sparse")
            .args(&args)
            .args(["-cf", "-", "sparse"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let dst = tempfile::tempdir().unwrap();
        apply(&out.stdout[..], dst.path(), &ApplyOptions::default())
            .unwrap_or_else(|e| panic!("{args:?}: {e:?}"));
        let got = std::fs::read(dst.path().join("sparse")).unwrap();
        assert_eq!(got.len(), want.len(), "{args:?}");
        assert!(got == want, "{args:?}: content differs");
        let (src_blocks, got_blocks) = (md(&f).blocks(), md(&dst.path().join("sparse")).blocks());
        assert!(
            got_blocks <= src_blocks + 64,
            "{args:?}: holes were filled ({got_blocks} blocks, source {src_blocks})"
        );
    }
}

#[test]
fn apply_whiteouts_become_overlay_whiteouts() {
    if !require_root("apply_whiteouts_become_overlay_whiteouts") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("existing"), b"x").unwrap();
    let tar = Tar::new()
        .file("etc/.wh.passwd", b"")
        .file(".wh.existing", b"")
        .file("early/.wh..wh..opq", b"")
        .entry(h("early/", b'5').mode(0o700), b"")
        .file("early/kept", b"k")
        .dir("late/")
        .file("late/child", b"c")
        .file("late/.wh..wh..opq", b"")
        .file(".wh..wh.plnk/123", b"aufs-internal")
        .file(".wh..wh.aufs", b"")
        .end();
    apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    let r = t.path();
    assert!(is_whiteout(&r.join("etc/passwd")));
    assert!(is_whiteout(&r.join("existing")));
    assert!(!r.join("etc/.wh.passwd").exists());
    assert_eq!(
        xattr(&r.join("early"), "trusted.overlay.opaque").unwrap(),
        b"y"
    );
    assert_eq!(md(&r.join("early")).mode() & 0o7777, 0o700);
    assert!(r.join("early/kept").exists());
    assert_eq!(
        xattr(&r.join("late"), "trusted.overlay.opaque").unwrap(),
        b"y"
    );
    assert!(r.join("late/child").exists());
    assert!(!r.join(".wh..wh.plnk").exists());
    assert!(!r.join(".wh..wh.aufs").exists());
}

#[test]
fn apply_userxattr_format_uses_user_opaque() {
    if !require_root("apply_userxattr_format_uses_user_opaque") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let o = ApplyOptions {
        whiteouts: WhiteoutFormat::OverlayUserXattr,
        ..Default::default()
    };
    apply(
        &Tar::new().dir("d").file("d/.wh..wh..opq", b"").end()[..],
        t.path(),
        &o,
    )
    .unwrap();
    assert_eq!(
        xattr(&t.path().join("d"), "user.overlay.opaque").unwrap(),
        b"y"
    );
    assert!(xattr(&t.path().join("d"), "trusted.overlay.opaque").is_none());
}

#[test]
fn apply_aufs_hardlinks_to_plnk_resolve_and_plnk_is_removed() {
    if !require_root("apply_aufs_hardlinks_to_plnk_resolve_and_plnk_is_removed") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .file(".wh..wh.plnk/1234.5678", b"shared")
        .hardlink("a/one", ".wh..wh.plnk/1234.5678")
        .hardlink("b/two", "/.wh..wh.plnk/1234.5678")
        .end();
    apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(std::fs::read(t.path().join("a/one")).unwrap(), b"shared");
    assert_eq!(
        md(&t.path().join("a/one")).ino(),
        md(&t.path().join("b/two")).ino()
    );
    assert!(!t.path().join(".wh..wh.plnk").exists());
}

#[test]
fn apply_delete_format_removes_and_empties() {
    if !require_root("apply_delete_format_removes_and_empties") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    crate::common::write(t.path(), "gone/deep/file", b"x");
    crate::common::write(t.path(), "op/old1", b"x");
    crate::common::write(t.path(), "op/sub/old2", b"x");
    crate::common::write(t.path(), "keep", b"x");
    let o = ApplyOptions {
        whiteouts: WhiteoutFormat::Delete,
        ..Default::default()
    };
    let tar = Tar::new()
        .file(".wh.gone", b"")
        .dir("op")
        .file("op/new", b"n")
        .file("op/.wh..wh..opq", b"")
        .end();
    apply(&tar[..], t.path(), &o).unwrap();
    assert!(!t.path().join("gone").exists());
    assert!(t.path().join("keep").exists());
    let mut names: Vec<_> = std::fs::read_dir(t.path().join("op"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["new"]);
    assert!(xattr(&t.path().join("op"), "trusted.overlay.opaque").is_none());
}

#[test]
fn apply_existing_paths_are_replaced_or_merged_as_docker() {
    if !require_root("apply_existing_paths_are_replaced_or_merged_as_docker") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    crate::common::write(r, "dir-to-file/child", b"x");
    crate::common::write(r, "merge/old", b"x");
    crate::common::write(r, "file-to-dir", b"x");
    crate::common::write(r, "file-to-link", b"x");
    let tar = Tar::new()
        .file("dir-to-file", b"now a file")
        .entry(h("merge/", b'5').mode(0o711), b"")
        .file("merge/new", b"n")
        .dir("file-to-dir")
        .symlink("file-to-link", "target")
        .end();
    apply(&tar[..], r, &ApplyOptions::default()).unwrap();
    assert_eq!(std::fs::read(r.join("dir-to-file")).unwrap(), b"now a file");
    assert!(r.join("merge/old").exists() && r.join("merge/new").exists());
    assert_eq!(md(&r.join("merge")).mode() & 0o7777, 0o711);
    assert!(md(&r.join("file-to-dir")).is_dir());
    assert!(md(&r.join("file-to-link")).file_type().is_symlink());
}

#[test]
fn apply_tar_without_end_blocks_is_accepted() {
    if !require_root("apply_tar_without_end_blocks_is_accepted") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new().file("a", b"1").file("b", &[2u8; 700]).no_end();
    let s = apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(s.entries, 2);
    assert_eq!(std::fs::read(t.path().join("b")).unwrap().len(), 700);
    // One zero block then the end of input is accepted too.
    let t2 = tempfile::tempdir().unwrap();
    let mut tar = Tar::new().file("a", b"1").no_end();
    tar.extend_from_slice(&[0u8; 512]);
    apply(&tar[..], t2.path(), &ApplyOptions::default()).unwrap();
    // And trailing bytes after the end marker are drained, not interpreted.
    let t3 = tempfile::tempdir().unwrap();
    let mut tar = Tar::new().file("a", b"1").end();
    tar.extend_from_slice(&[0u8; 10240]);
    apply(&tar[..], t3.path(), &ApplyOptions::default()).unwrap();
}

#[test]
fn apply_header_only_types_ignore_their_size_field() {
    if !require_root("apply_header_only_types_ignore_their_size_field") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let mut sym = h("s", b'2').link("x");
    sym.size = Some(100);
    let mut tar = Tar::new();
    tar.header(&sym, 0);
    let tar = tar.file("after", b"ok").end();
    apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(std::fs::read(t.path().join("after")).unwrap(), b"ok");
}

/// A tree with one of everything GNU tar can round-trip.
fn sample_tree(root: &Path) {
    crate::common::write(root, "etc/hostname", b"box\n");
    crate::common::write(root, "usr/share/doc/readme", &vec![b'r'; 70_000]);
    crate::common::write(
        root,
        &format!("deep/{}/{}", "n".repeat(90), "m".repeat(90)),
        b"long",
    );
    std::fs::write(root.join("usr/empty"), b"").unwrap();
    std::os::unix::fs::symlink("../etc/hostname", root.join("usr/hn")).unwrap();
    std::fs::hard_link(root.join("etc/hostname"), root.join("etc/hostname.hard")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("etc/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("etc/null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("usr/empty"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4711),
    )
    .unwrap();
    rustix::fs::chown(
        root.join("usr/share"),
        Some(rustix::fs::Uid::from_raw(1234)),
        Some(rustix::fs::Gid::from_raw(99)),
    )
    .unwrap();
    rustix::fs::lsetxattr(
        root.join("usr/share/doc/readme"),
        "user.mime",
        b"text/plain",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    for p in [
        "etc/hostname",
        "usr/share/doc/readme",
        "usr/empty",
        "etc",
        "usr/share/doc",
        "usr/share",
        "usr",
        "deep",
    ] {
        let t = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 1_500_000_000,
                tv_nsec: 0,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 1_500_000_000 + p.len() as i64,
                tv_nsec: 0,
            },
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            root.join(p),
            &t,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
}

#[test]
fn apply_gnu_tar_archive_matches_gnu_tar_extraction() {
    if !require_root("apply_gnu_tar_archive_matches_gnu_tar_extraction") || !gnu_tar_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    for format in ["--format=posix", "--format=gnu", "--format=ustar"] {
        let mut args = vec!["-C", src.path().to_str().unwrap(), format, "-cf", "-"];
        if format == "--format=posix" {
            args.extend(["--xattrs", "--xattrs-include=user.*"]);
        }
        args.push(".");
        let out = Command::new("tar").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ours = tempfile::tempdir().unwrap();
        apply(&out.stdout[..], ours.path(), &ApplyOptions::default()).unwrap();
        let theirs = tempfile::tempdir().unwrap();
        let mut child = Command::new("tar")
            .args([
                "--xattrs",
                "--xattrs-include=user.*",
                "--same-owner",
                "-p",
                "-xf",
                "-",
                "-C",
            ])
            .arg(theirs.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), &out.stdout).unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        let mut a = snapshot(ours.path(), true);
        let mut b = snapshot(theirs.path(), true);
        if format != "--format=posix" {
            for n in a.values_mut().chain(b.values_mut()) {
                n.xattrs.clear();
            }
        }
        assert_same_tree(&a, &b, format);
        assert_eq!(snapshot(src.path(), true).len(), a.len());
    }
}

fn acl_entry(tag: u16, perm: u16) -> Vec<u8> {
    [
        &tag.to_le_bytes()[..],
        &perm.to_le_bytes()[..],
        &u32::MAX.to_le_bytes()[..],
    ]
    .concat()
}

#[test]
fn apply_fresh_entries_get_exact_owner_and_mode_despite_setgid_acl_and_umask() {
    if !require_root("apply_fresh_entries_get_exact_owner_and_mode_despite_setgid_acl_and_umask") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // A default ACL on the target (user::rwx group::--- other::---) overrides the umask for
    // new entries: skipping chmod on the umask's word alone would leave 0600 files.
    let acl = [
        &2u32.to_le_bytes()[..],
        &acl_entry(0x01, 7),
        &acl_entry(0x04, 0),
        &acl_entry(0x20, 0),
    ]
    .concat();
    let acl_set = rustix::fs::lsetxattr(
        t.path(),
        "system.posix_acl_default",
        &acl,
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok();
    let tar = Tar::new()
        .entry(h("a", b'0').mode(0o644), b"a")
        .entry(h("open", b'0').mode(0o666), b"o")
        .entry(h("sg/", b'5').mode(0o2775).owner(0, 50), b"")
        .entry(h("sg/root-group", b'0').mode(0o644).owner(0, 0), b"f")
        .entry(h("sg/dir-group", b'0').mode(0o640).owner(0, 50), b"g")
        .entry(h("sg/sub/", b'5').mode(0o755).owner(0, 0), b"")
        .entry(h("sg/sub/x", b'0').mode(0o600).owner(1, 1), b"x")
        .entry(h("sg/plain/", b'5').mode(0o755).owner(0, 50), b"")
        .entry(h("sg/keeps/", b'5').mode(0o2755).owner(0, 50), b"")
        .end();
    apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    let r = t.path();
    let got = |p: &str| {
        let m = md(&r.join(p));
        (m.mode() & 0o7777, m.uid(), m.gid())
    };
    assert_eq!(got("a"), (0o644, 0, 0), "acl set: {acl_set}");
    assert_eq!(got("open"), (0o666, 0, 0));
    assert_eq!(got("sg"), (0o2775, 0, 50));
    assert_eq!(got("sg/root-group"), (0o644, 0, 0));
    assert_eq!(got("sg/dir-group"), (0o640, 0, 50));
    assert_eq!(got("sg/sub"), (0o755, 0, 0));
    assert_eq!(got("sg/sub/x"), (0o600, 1, 1));
    // In a setgid directory a new directory inherits S_ISGID; the tar says it must not have it.
    assert_eq!(got("sg/plain"), (0o755, 0, 50));
    assert_eq!(got("sg/keeps"), (0o2755, 0, 50));
}

#[test]
fn apply_symlink_xattrs_are_set_and_exported() {
    if !require_root("apply_symlink_xattrs_are_set_and_exported") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .pax(&[(b"SCHILY.xattr.trusted.label", b"sym")])
        .symlink("s", "target")
        .pax(&[(b"SCHILY.xattr.trusted.label", b"fifo")])
        .entry(h("p", b'6'), b"")
        .end();
    apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(xattr(&t.path().join("s"), "trusted.label").unwrap(), b"sym");
    assert_eq!(
        xattr(&t.path().join("p"), "trusted.label").unwrap(),
        b"fifo"
    );
    let mut out = Vec::new();
    strata_archive::export(t.path(), &mut out, &Default::default()).unwrap();
    let back = tempfile::tempdir().unwrap();
    apply(&out[..], back.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(
        xattr(&back.path().join("s"), "trusted.label").unwrap(),
        b"sym"
    );
    assert_eq!(
        xattr(&back.path().join("p"), "trusted.label").unwrap(),
        b"fifo"
    );
}

/// Go's `archive/tar` output (tests/fixtures/go-tar, written by its gen.go): complete, and as
/// Go-based tools such as umoci leave it when the writer is never closed.
fn go_fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/go-tar")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn apply_go_tar_without_padding_or_end_blocks_matches_complete_archive() {
    if !require_root("apply_go_tar_without_padding_or_end_blocks_matches_complete_archive") {
        return;
    }
    let closed = go_fixture("closed.tar");
    let want = tempfile::tempdir().unwrap();
    let s = apply(&closed[..], want.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(s.entries, 8);
    let r = want.path();
    assert_eq!(std::fs::read(r.join("bin/last")).unwrap().len(), 1000);
    assert_eq!(md(&r.join("big-uid")).uid(), 1 << 30);
    assert!(is_whiteout(&r.join("etc/gone")));
    assert_eq!(
        md(&r.join("etc/hostname.link")).ino(),
        md(&r.join("etc/hostname")).ino()
    );
    // Directory times are left out: the implied ones (`usr/`, `bin/`) are "now".
    let want = snapshot(r, false);
    // The last entry's data (1000 bytes) ends the stream: no padding, no end blocks.
    let unclosed = go_fixture("unclosed.tar");
    assert_eq!(unclosed.len() % 512, 1000 % 512);
    // Padding there, end blocks not; padding cut short; one end block only.
    let flushed = go_fixture("flushed.tar");
    let variants = [
        ("unclosed", unclosed.clone()),
        ("flushed", flushed.clone()),
        ("padding cut short", closed[..unclosed.len() + 7].to_vec()),
        ("one end block", closed[..flushed.len() + 512].to_vec()),
    ];
    for (what, tar) in variants {
        let t = tempfile::tempdir().unwrap();
        let s = apply(&tar[..], t.path(), &ApplyOptions::default())
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_eq!(s.entries, 8, "{what}");
        assert_same_tree(&snapshot(t.path(), false), &want, what);
    }
}

#[test]
fn apply_go_tar_cut_inside_data_or_header_is_unexpected_eof() {
    if !require_root("apply_go_tar_cut_inside_data_or_header_is_unexpected_eof") {
        return;
    }
    let closed = go_fixture("closed.tar");
    let unclosed = go_fixture("unclosed.tar").len();
    for (what, cut) in [
        ("inside the last entry's data", unclosed - 1),
        ("inside the last header", unclosed - 1000 - 100),
        ("inside an end block", go_fixture("flushed.tar").len() + 100),
    ] {
        let t = tempfile::tempdir().unwrap();
        let e = apply(&closed[..cut], t.path(), &ApplyOptions::default()).unwrap_err();
        assert!(
            matches!(e, strata_archive::Error::Read { ref source, .. }
                if source.kind() == std::io::ErrorKind::UnexpectedEof),
            "{what}: {e:?}"
        );
    }
}

#[test]
fn apply_gnu_tar_stripped_of_end_blocks_and_last_padding_is_accepted() {
    if !require_root("apply_gnu_tar_stripped_of_end_blocks_and_last_padding_is_accepted")
        || !gnu_tar_available()
    {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("d")).unwrap();
    std::fs::write(src.path().join("d/a"), b"first").unwrap();
    std::fs::write(src.path().join("d/z"), [5u8; 777]).unwrap();
    let out = Command::new("tar")
        .args(["--format=gnu", "--sort=name", "-C"])
        .arg(src.path())
        .args(["-cf", "-", "d"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let full = out.stdout;
    assert_eq!(full.len() % 10240, 0, "GNU tar pads to its record size");
    // Header d/, header d/a + 1 block, header d/z + 777 bytes of data: then stop.
    let end = 512 + 1024 + 512 + 777;
    assert_eq!(&full[end - 777..end], &[5u8; 777][..]);
    let want = tempfile::tempdir().unwrap();
    apply(&full[..], want.path(), &ApplyOptions::default()).unwrap();
    let got = tempfile::tempdir().unwrap();
    let s = apply(&full[..end], got.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(s.entries, 3);
    assert_same_tree(
        &snapshot(got.path(), true),
        &snapshot(want.path(), true),
        "stripped",
    );
}

/// The process umask, as the kernel applies it to new files.
fn umask() -> u32 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(l["Umask:".len()..].trim(), 8).unwrap()
}

#[test]
fn apply_fresh_entries_get_exact_mode_despite_the_umask() {
    if !require_root("apply_fresh_entries_get_exact_mode_despite_the_umask") {
        return;
    }
    // No default ACL here: the kernel takes the umask off every new entry's mode, and apply
    // must put back what it took (a wrong idea of the umask would skip that chmod).
    assert_ne!(
        umask() & 0o022,
        0,
        "the test runs under the usual umask (022 or stricter)"
    );
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .entry(h("open", b'0').mode(0o666), b"o")
        .entry(h("x", b'0').mode(0o777), b"x")
        .entry(h("d/", b'5').mode(0o777), b"")
        .entry(h("d/fifo", b'6').mode(0o666), b"")
        .entry(h("odd", b'0').mode(0o667), b"1")
        // Root-owned (no chown forces the chmod): the special bits and a mode made only of
        // bits the umask takes.
        .entry(h("suid", b'0').mode(0o4755).owner(0, 0), b"s")
        .entry(h("gw", b'0').mode(0o020).owner(0, 0), b"g")
        .end();
    apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    for (p, want) in [
        ("open", 0o666),
        ("x", 0o777),
        ("d", 0o777),
        ("d/fifo", 0o666),
        ("odd", 0o667),
        ("suid", 0o4755),
        ("gw", 0o020),
    ] {
        assert_eq!(md(&t.path().join(p)).mode() & 0o7777, want, "{p}");
    }
}

#[test]
fn apply_access_time_is_kept_unless_before_modification_time() {
    if !require_root("apply_access_time_is_kept_unless_before_modification_time") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .pax(&[(b"atime", b"1700000000.5")])
        .entry(h("later", b'0').mtime(1_600_000_000), b"l")
        .pax(&[(b"atime", b"1500000000")])
        .entry(h("earlier", b'0').mtime(1_600_000_000), b"e")
        .pax(&[(b"atime", b"1600000000")])
        .entry(h("equal", b'0').mtime(1_600_000_000), b"q")
        .entry(h("none", b'0').mtime(1_600_000_000), b"n")
        .pax(&[(b"atime", b"1700000000")])
        .entry(h("dir/", b'5').mtime(1_600_000_000), b"")
        .pax(&[(b"atime", b"1700000000")])
        .symlink("link", "later")
        .end();
    apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    let times = |p: &str| {
        let m = md(&t.path().join(p));
        (m.atime(), m.atime_nsec(), m.mtime())
    };
    // As moby: the tar's access time, unless it is before the modification time.
    assert_eq!(times("later"), (1_700_000_000, 500_000_000, 1_600_000_000));
    assert_eq!(times("earlier"), (1_600_000_000, 0, 1_600_000_000));
    assert_eq!(times("equal"), (1_600_000_000, 0, 1_600_000_000));
    assert_eq!(times("none"), (1_600_000_000, 0, 1_600_000_000));
    assert_eq!(times("dir"), (1_700_000_000, 0, 1_600_000_000));
    assert_eq!(times("link").0, 1_700_000_000);
}

#[test]
fn apply_aufs_metadata_is_skipped_except_files_in_the_hardlink_dir() {
    if !require_root("apply_aufs_metadata_is_skipped_except_files_in_the_hardlink_dir") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        // Only regular files inside `.wh..wh.plnk/` are extracted (and removed at the end): a
        // file named like the directory itself is skipped, so the directory can still be made.
        .file(".wh..wh.plnk", b"not the directory")
        .file(".wh..wh.plnk/1", b"shared")
        .symlink(".wh..wh.plnk/s", "1")
        // Other AUFS metadata is skipped whatever it holds.
        .file(".wh..wh.aufs", b"")
        .file(".wh..wh.aufs/x", b"x")
        .file(".wh..wh.orph/f", b"f")
        .file(".wh..wh.longer-name", b"l")
        .hardlink("a", ".wh..wh.plnk/1")
        .end();
    let s = apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(s.entries, 8);
    assert_eq!(std::fs::read(t.path().join("a")).unwrap(), b"shared");
    assert_eq!(
        md(&t.path().join("a")).nlink(),
        1,
        "the hardlink dir is gone"
    );
    let names: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["a"]);
}

#[test]
fn apply_delete_format_opaque_keeps_what_the_tar_wrote_at_any_depth() {
    if !require_root("apply_delete_format_opaque_keeps_what_the_tar_wrote_at_any_depth") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    for p in [
        "op/old1",
        "op/sub/old2",
        "op/sub/deeper/old3",
        "real/keep",
        "top-old",
    ] {
        crate::common::write(r, p, b"x");
    }
    let o = ApplyOptions {
        whiteouts: WhiteoutFormat::Delete,
        ..Default::default()
    };
    let tar = Tar::new()
        .dir("op")
        .dir("op/sub")
        .file("op/sub/new", b"n")
        .file("op/.wh..wh..opq", b"")
        // A marker beneath a symlink does nothing (moby's walk does not enter it).
        .symlink("ln", "real")
        .file("ln/.wh..wh..opq", b"")
        .file("top-new", b"t")
        .end();
    apply(&tar[..], r, &o).unwrap();
    let tree: Vec<String> = crate::common::snapshot(r, false).into_keys().collect();
    assert_eq!(
        tree,
        [
            "ln",
            "op",
            "op/sub",
            "op/sub/new",
            "real",
            "real/keep",
            "top-new",
            "top-old"
        ]
    );
    // At the root, the marker empties the root of what the tar did not write.
    let tar = Tar::new()
        .file("fresh", b"f")
        .file(".wh..wh..opq", b"")
        .end();
    apply(&tar[..], r, &o).unwrap();
    let tree: Vec<String> = crate::common::snapshot(r, false).into_keys().collect();
    assert_eq!(tree, ["fresh"]);
}

/// Makes a file immutable (`chattr +i`) until dropped.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn new(p: &Path) -> Immutable {
        let ok = Command::new("chattr").arg("+i").arg(p).status().unwrap();
        assert!(ok.success(), "chattr +i {}", p.display());
        Immutable(p.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn apply_whiteout_that_cannot_replace_names_the_path() {
    if !require_root("apply_whiteout_that_cannot_replace_names_the_path") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    crate::common::write(t.path(), "sub/x", b"immutable");
    crate::common::write(t.path(), "y", b"immutable");
    let _guards = [
        Immutable::new(&t.path().join("sub/x")),
        Immutable::new(&t.path().join("y")),
    ];
    for (name, shown) in [("sub/.wh.x", "sub/x"), (".wh.y", "y")] {
        for whiteouts in [WhiteoutFormat::Overlay, WhiteoutFormat::Delete] {
            let o = ApplyOptions {
                whiteouts,
                ..Default::default()
            };
            let e = apply(&Tar::new().file(name, b"").end()[..], t.path(), &o).unwrap_err();
            assert_eq!(e.to_string(), format!("unlink {shown:?}"), "{whiteouts:?}");
            assert_eq!(e.raw_os_error(), Some(libc_eperm()));
        }
    }
    assert_eq!(std::fs::read(t.path().join("sub/x")).unwrap(), b"immutable");
}

fn libc_eperm() -> i32 {
    rustix::io::Errno::PERM.raw_os_error()
}

#[test]
fn apply_in_a_plain_directory_of_another_group_sets_the_entry_group() {
    if !require_root("apply_in_a_plain_directory_of_another_group_sets_the_entry_group") {
        return;
    }
    // A directory owned by group 50 without S_ISGID: new entries get our gid (0), not the
    // directory's, so an entry of group 50 needs its chown (only a setgid parent hands down
    // its group).
    let t = tempfile::tempdir().unwrap();
    let g = t.path().join("g");
    std::fs::create_dir(&g).unwrap();
    std::os::unix::fs::chown(&g, Some(0), Some(50)).unwrap();
    std::fs::set_permissions(&g, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let tar = Tar::new()
        .entry(h("g/f", b'0').mode(0o644).owner(0, 50), b"f")
        .entry(h("g/d/", b'5').mode(0o755).owner(0, 50), b"")
        .entry(h("g/root", b'0').mode(0o644).owner(0, 0), b"r")
        .end();
    apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    let got = |p: &str| {
        let m = md(&g.join(p));
        (m.mode() & 0o7777, m.gid())
    };
    assert_eq!(got("f"), (0o644, 50));
    assert_eq!(got("d"), (0o755, 50));
    assert_eq!(got("root"), (0o644, 0));
}

#[test]
fn apply_xattr_the_filesystem_refuses_for_size_is_an_error() {
    if !require_root("apply_xattr_the_filesystem_refuses_for_size_is_an_error") {
        return;
    }
    // Over the kernel's 64 KiB value limit: E2BIG is a real failure (only ENOTSUP and EPERM,
    // a filesystem that does not take xattrs, are ignored, as moby does).
    let t = tempfile::tempdir().unwrap();
    let big = vec![b'v'; 70_000];
    let tar = Tar::new()
        .pax(&[(b"SCHILY.xattr.user.big", &big)])
        .file("f", b"x")
        .end();
    let e = apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap_err();
    assert!(
        matches!(e, strata_archive::Error::Fs { op: "setxattr", ref path, .. } if path == "f"),
        "{e:?}"
    );
    assert_eq!(
        e.raw_os_error(),
        Some(rustix::io::Errno::TOOBIG.raw_os_error())
    );
}

#[test]
fn apply_devices_are_skipped_in_a_user_namespace() {
    const NAME: &str = "apply::apply_devices_are_skipped_in_a_user_namespace";
    if std::env::var_os("STRATA_TEST_IN_USERNS").is_some() {
        // The inner run, inside `unshare --user --map-root-user`: mknod of a device fails
        // there with EPERM and, as moby does, the device is skipped; a fifo is still made.
        let t = tempfile::tempdir().unwrap();
        let tar = Tar::new()
            .entry(h("null", b'3').dev(1, 3).mode(0o666), b"")
            .entry(h("loop0", b'4').dev(7, 0), b"")
            .entry(h("fifo", b'6'), b"")
            .file("f", b"x")
            .end();
        let s = apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
        assert_eq!(s.entries, 4);
        assert!(std::fs::symlink_metadata(t.path().join("null")).is_err());
        assert!(std::fs::symlink_metadata(t.path().join("loop0")).is_err());
        assert!(md(&t.path().join("fifo")).file_type().is_fifo());
        assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"x");
        return;
    }
    if !require_root(NAME) {
        return;
    }
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env("STRATA_TEST_IN_USERNS", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "inner run failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "inner run did not run the test:\n{text}"
    );
}

#[test]
fn apply_hardlink_entry_metadata_lands_on_the_shared_inode() {
    if !require_root("apply_hardlink_entry_metadata_lands_on_the_shared_inode") {
        return;
    }
    // As moby: the link entry's owner, mode and times are applied to the inode both names
    // share; the same mode and owner are left alone.
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .entry(h("f", b'0').mode(0o644).owner(1, 1).mtime(1_000), b"x")
        .entry(
            h("h", b'1').link("f").mode(0o750).owner(2, 3).mtime(2_000),
            b"",
        )
        .entry(h("g", b'0').mode(0o600).owner(4, 4).mtime(3_000), b"y")
        .entry(
            h("k", b'1').link("g").mode(0o600).owner(4, 4).mtime(4_000),
            b"",
        )
        .end();
    apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    let got = |p: &str| {
        let m = md(&t.path().join(p));
        (m.mode() & 0o7777, m.uid(), m.gid(), m.mtime(), m.nlink())
    };
    assert_eq!(got("f"), (0o750, 2, 3, 2_000, 2));
    assert_eq!(got("h"), got("f"));
    assert_eq!(got("g"), (0o600, 4, 4, 4_000, 2));
}

#[test]
fn apply_in_a_setgid_directory_modes_are_exact() {
    if !require_root("apply_in_a_setgid_directory_modes_are_exact") {
        return;
    }
    // In a setgid directory a new entry gets the directory's group, so no chown is needed for
    // entries of that group; the mode still has to come out exactly as the tar says: a setgid
    // file keeps S_ISGID (the kernel does not give it), a directory drops the S_ISGID it
    // inherits when the tar does not have it, even with no other bit set.
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .entry(h("sg/", b'5').mode(0o2775).owner(0, 50), b"")
        .entry(h("sg/prog", b'0').mode(0o2755).owner(0, 50), b"p")
        .entry(h("sg/zero/", b'5').mode(0).owner(0, 50), b"")
        .entry(h("sg/keep/", b'5').mode(0o2700).owner(0, 50), b"")
        .end();
    apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    let got = |p: &str| {
        let m = md(&t.path().join(p));
        (m.mode() & 0o7777, m.gid())
    };
    assert_eq!(got("sg"), (0o2775, 50));
    assert_eq!(got("sg/prog"), (0o2755, 50));
    assert_eq!(got("sg/zero"), (0, 50));
    assert_eq!(got("sg/keep"), (0o2700, 50));
}

/// A tar source that, once `at` bytes were read, starts a process listing the fds it inherited.
struct SpawningReader<'a> {
    data: &'a [u8],
    pos: usize,
    at: usize,
    seen: Option<String>,
}

impl std::io::Read for SpawningReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.at && self.seen.is_none() {
            let out = Command::new("ls")
                .args(["-l", "/proc/self/fd/"])
                .output()
                .unwrap();
            self.seen = Some(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        // Small reads, so the file being written is open across several of them.
        let n = buf.len().min(4096).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn apply_fds_are_not_inherited_by_processes_started_meanwhile() {
    if !require_root("apply_fds_are_not_inherited_by_processes_started_meanwhile") {
        return;
    }
    // Another thread of the plugin may start a process while a layer is being applied: none
    // of apply's fds (directories, the file being written) may leak into it.
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .dir("d")
        .dir("d/e")
        .file("d/e/big", &[7u8; 64 * 1024])
        .end();
    let mut r = SpawningReader {
        data: &tar,
        pos: 0,
        at: 3 * 512 + 16 * 1024,
        seen: None,
    };
    apply(&mut r, t.path(), &ApplyOptions::default()).unwrap();
    let seen = r.seen.expect("the process was started");
    let root = t.path().to_str().unwrap();
    assert!(seen.contains("/proc/"), "ls listed its fds: {seen}");
    assert!(
        !seen.contains(root),
        "apply's fds leaked into a child:\n{seen}"
    );
}

#[test]
fn apply_sparse_fragment_larger_than_a_read_buffer_lands_whole() {
    if !require_root("apply_sparse_fragment_larger_than_a_read_buffer_lands_whole")
        || !gnu_tar_available()
    {
        return;
    }
    // One data fragment of 700 KiB (several of the reader's 256 KiB buffers) between holes,
    // and a small one: every chunk of a fragment goes right after the one before it.
    let src = tempfile::tempdir().unwrap();
    let f = src.path().join("sparse");
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::create(&f).unwrap();
        let big: Vec<u8> = (0..700 * 1024u32).map(|i| (i % 251) as u8).collect();
        file.write_all_at(&big, 1 << 20).unwrap();
        file.write_all_at(b"tail", 4 << 20).unwrap();
        file.set_len((5 << 20) + 1).unwrap();
    }
    let want = std::fs::read(&f).unwrap();
    for args in [
        ["--format=gnu", ""],
        ["--format=posix", "--sparse-version=1.0"],
    ] {
        let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
        let out = Command::new("tar")
            .arg("-C")
            .arg(src.path())
            .arg("--sparse")
            .args(&args)
            .args(["-cf", "-", "sparse"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let dst = tempfile::tempdir().unwrap();
        let s = apply(&out.stdout[..], dst.path(), &ApplyOptions::default()).unwrap();
        let got = std::fs::read(dst.path().join("sparse")).unwrap();
        assert!(got == want, "{args:?}: content differs");
        // The bytes written are the stored fragments (whole blocks as the filesystem reports
        // data), not the holes.
        assert!(
            s.bytes >= 700 * 1024 + 4 && s.bytes < 1 << 20,
            "{args:?}: {} bytes",
            s.bytes
        );
    }
}

/// A filesystem that refuses device nodes (a fresh devpts instance has no `mknod`: EPERM) makes
/// a device entry an error, as it makes a fifo one; only inside a user namespace, where no
/// device can be made, is a device skipped (as moby does).
#[test]
fn apply_device_refused_by_the_filesystem_is_an_error_outside_a_user_namespace() {
    if !require_root("apply_device_refused_by_the_filesystem_is_an_error_outside_a_user_namespace")
    {
        return;
    }
    const INIT_USER_NS: u64 = 0xEFFF_FFFD;
    let in_user_ns = std::fs::metadata("/proc/self/ns/user").unwrap().ino() != INIT_USER_NS;
    let t = tempfile::tempdir().unwrap();
    let at = t.path().join("pts");
    std::fs::create_dir(&at).unwrap();
    let st = Command::new("mount")
        .args(["-t", "devpts", "-o", "newinstance", "devpts"])
        .arg(&at)
        .status()
        .unwrap();
    assert!(st.success(), "mount devpts");
    let _unmount = crate::common::Mount { path: at.clone() };
    for (name, flag, skipped) in [
        ("c", b'3', in_user_ns),
        ("b", b'4', in_user_ns),
        ("f", b'6', false),
    ] {
        let tar = Tar::new()
            .entry(h(name, flag).mode(0o644).dev(1, 3), b"")
            .end();
        let r = apply(&tar[..], &at, &ApplyOptions::default());
        if skipped {
            r.unwrap();
        } else {
            let e = r.unwrap_err();
            assert_eq!(e.to_string(), format!("mknod \"{name}\""));
            assert_eq!(
                e.raw_os_error(),
                Some(rustix::io::Errno::PERM.raw_os_error()),
                "{e:?}"
            );
        }
        assert!(std::fs::symlink_metadata(at.join(name)).is_err());
    }
}

/// After the end-of-archive marker the rest of the input is read to its end (as dockerd
/// drains a layer stream), so a writer on the other side of a pipe never sees it closed early.
#[test]
fn apply_reads_the_input_to_its_end_after_the_archive() {
    if !require_root("apply_reads_the_input_to_its_end_after_the_archive") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let mut input = Tar::new().file("f", b"x").end();
    let archive_len = input.len();
    // Zeros, as tar writers pad to their record size, past the reader's 256 KiB buffer.
    input.resize(archive_len + 600 * 1024, 0);
    let mut rest: &[u8] = &input;
    apply(&mut rest, t.path(), &ApplyOptions::default()).unwrap();
    assert!(rest.is_empty(), "{} bytes left unread", rest.len());
    assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"x");
}

/// PAX `size` and `gid` records override the USTAR fields (as Go writes them for values that
/// do not fit there).
#[test]
fn apply_pax_size_and_gid_override_the_header() {
    if !require_root("apply_pax_size_and_gid_override_the_header") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let mut hh = h("f", b'0').mode(0o644).owner(0, 0);
    hh.size = Some(0);
    let tar = Tar::new()
        .pax(&[(b"gid", b"12345"), (b"size", b"5")])
        .entry(hh, b"hello")
        .file("after", b"ok")
        .end();
    apply(&tar[..], t.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"hello");
    assert_eq!(md(&t.path().join("f")).gid(), 12345);
    assert_eq!(std::fs::read(t.path().join("after")).unwrap(), b"ok");
}

/// A sparse file that is all hole: GNU tar's PAX 1.0 format stores only the map, padded to a
/// block, and no data.
#[test]
fn apply_all_hole_sparse_file_from_gnu_tar() {
    if !require_root("apply_all_hole_sparse_file_from_gnu_tar") || !gnu_tar_available() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    std::fs::File::create(src.path().join("hole"))
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let out = Command::new("tar")
        .arg("-C")
        .arg(src.path())
        .args(["--sparse", "--format=posix", "--sparse-version=1.0"])
        .args(["-cf", "-", "hole"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let dst = tempfile::tempdir().unwrap();
    apply(&out.stdout[..], dst.path(), &ApplyOptions::default()).unwrap();
    let got = std::fs::read(dst.path().join("hole")).unwrap();
    assert!(got.len() == 1 << 20 && got.iter().all(|&b| b == 0));
}
