//! The hostile corpus: archives that try to reach outside the target directory, or are
//! malformed. Each case asserts the exact error or the contained result, and that the canary
//! beside the target (and everything else outside it) is untouched.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use strata_archive::{apply, ApplyOptions, Error, IdMapping, IdMaps, WhiteoutFormat};

use crate::common::{h, is_whiteout, require_root, xattr, Tar};

const CANARY: &[u8] = b"canary: must never change\n";

/// A home with `target/` (the apply root), a `canary` file and an `outside/` dir beside it.
struct Home {
    dir: tempfile::TempDir,
    canary_mtime: (i64, i64),
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("target")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("canary"), CANARY).unwrap();
        std::fs::write(dir.path().join("outside/canary"), CANARY).unwrap();
        let md = std::fs::metadata(dir.path().join("canary")).unwrap();
        Home {
            dir,
            canary_mtime: (md.mtime(), md.mtime_nsec()),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn target(&self) -> PathBuf {
        self.dir.path().join("target")
    }
    fn home_str(&self) -> String {
        self.dir.path().to_str().unwrap().to_string()
    }
    fn apply(&self, tar: &[u8]) -> Result<strata_archive::ApplyStats, Error> {
        self.apply_with(tar, &ApplyOptions::default())
    }
    fn apply_with(
        &self,
        tar: &[u8],
        o: &ApplyOptions,
    ) -> Result<strata_archive::ApplyStats, Error> {
        apply(tar, &self.target(), o)
    }
    /// Everything outside `target/` is exactly as created.
    fn check_canary(&self) {
        for c in ["canary", "outside/canary"] {
            let p = self.path().join(c);
            let md = std::fs::symlink_metadata(&p).unwrap_or_else(|_| panic!("{c} is gone"));
            assert!(md.file_type().is_file(), "{c} is no longer a file");
            assert_eq!(std::fs::read(&p).unwrap(), CANARY, "{c} content changed");
            assert_eq!(md.mode() & 0o7777, 0o644, "{c} mode changed");
            assert_eq!(md.uid(), 0);
        }
        let md = std::fs::metadata(self.path().join("canary")).unwrap();
        assert_eq!(
            (md.mtime(), md.mtime_nsec()),
            self.canary_mtime,
            "canary mtime changed"
        );
        let mut names: Vec<_> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["canary", "outside", "target"],
            "something appeared beside the target"
        );
        let outside: Vec<_> = std::fs::read_dir(self.path().join("outside"))
            .unwrap()
            .collect();
        assert_eq!(outside.len(), 1, "something appeared in outside/");
        assert!(xattr(self.path(), "trusted.overlay.opaque").is_none());
    }
}

fn errno(e: &Error) -> i32 {
    e.raw_os_error()
        .unwrap_or_else(|| panic!("not an OS error: {e:?}"))
}

macro_rules! case {
    ($name:ident, |$home:ident| $body:block) => {
        #[test]
        fn $name() {
            if !require_root(stringify!($name)) {
                return;
            }
            let $home = Home::new();
            $body
            $home.check_canary();
        }
    };
}

case!(apply_dotdot_file_is_escape, |home| {
    let e = home
        .apply(&Tar::new().file("../canary", b"pwned").end())
        .unwrap_err();
    assert!(
        matches!(e, Error::Escape { ref name } if name == "../canary"),
        "{e:?}"
    );
});

case!(apply_inner_dotdot_climbing_is_escape, |home| {
    let e = home
        .apply(&Tar::new().file("a/../../canary", b"pwned").end())
        .unwrap_err();
    assert!(e.is_escape(), "{e:?}");
});

case!(apply_bare_dotdot_dir_is_escape, |home| {
    let e = home.apply(&Tar::new().dir("..").end()).unwrap_err();
    assert!(e.is_escape(), "{e:?}");
});

case!(apply_dotdot_device_is_escape, |home| {
    let e = home
        .apply(&Tar::new().entry(h("../dev", b'3').dev(1, 3), b"").end())
        .unwrap_err();
    assert!(e.is_escape(), "{e:?}");
});

case!(apply_absolute_name_is_contained, |home| {
    home.apply(&Tar::new().file("/canary", b"inside").end())
        .unwrap();
    assert_eq!(
        std::fs::read(home.target().join("canary")).unwrap(),
        b"inside"
    );
});

case!(apply_absolute_host_path_is_contained, |home| {
    let name = format!("{}/canary", home.home_str());
    home.apply(&Tar::new().file(&name, b"inside").end())
        .unwrap();
    let inside = home.target().join(name.trim_start_matches('/'));
    assert_eq!(std::fs::read(inside).unwrap(), b"inside");
});

case!(apply_rooted_dotdot_stays_at_root, |home| {
    home.apply(&Tar::new().file("/../../canary", b"inside").end())
        .unwrap();
    assert_eq!(
        std::fs::read(home.target().join("canary")).unwrap(),
        b"inside"
    );
});

case!(apply_symlink_to_host_root_then_file_is_contained, |home| {
    let tar = Tar::new()
        .symlink("a", "/")
        .file("a/canary", b"inside")
        .end();
    home.apply(&tar).unwrap();
    assert_eq!(
        std::fs::read(home.target().join("canary")).unwrap(),
        b"inside"
    );
    assert_eq!(
        std::fs::read_link(home.target().join("a")).unwrap(),
        Path::new("/")
    );
});

case!(apply_symlink_to_dotdot_then_file_is_contained, |home| {
    let tar = Tar::new()
        .symlink("a", "../../..")
        .file("a/canary", b"inside")
        .end();
    home.apply(&tar).unwrap();
    assert_eq!(
        std::fs::read(home.target().join("canary")).unwrap(),
        b"inside"
    );
});

case!(apply_symlink_to_host_dir_then_file_fails_inside, |home| {
    // `a -> <home>`: inside the root that path does not exist, so nothing is written.
    let tar = Tar::new()
        .symlink("a", &home.home_str())
        .file("a/canary", b"pwned")
        .end();
    let e = home.apply(&tar).unwrap_err();
    assert!(matches!(e, Error::Resolve { .. }), "{e:?}");
    assert_eq!(errno(&e), libc_enoent());
    let want = format!(
        "resolve \"a\" (the directory of an entry): \"a\" is a symlink to {:?}, which leads to \
         nothing beneath the root",
        home.home_str()
    );
    assert_eq!(e.to_string(), want);
});

case!(apply_through_dangling_symlink_says_what_and_why, |home| {
    let tar = Tar::new()
        .dir("etc")
        .symlink("etc/conf", "/nonexistent")
        .file("etc/conf/sub/file", b"x")
        .end();
    let e = home.apply(&tar).unwrap_err();
    assert_eq!(errno(&e), libc_enoent());
    assert_eq!(
        e.to_string(),
        "resolve \"etc/conf/sub\" (the directory of an entry): \"etc/conf\" is a symlink to \
         \"/nonexistent\", which leads to nothing beneath the root"
    );
});

case!(
    apply_through_file_or_symlink_to_file_says_not_a_directory,
    |home| {
        let tar = Tar::new().file("f", b"x").file("f/g", b"y").end();
        let e = home.apply(&tar).unwrap_err();
        assert_eq!(
            e.to_string(),
            "resolve \"f\" (the directory of an entry): \"f\" is a regular file, not a directory"
        );
        let home2 = Home::new();
        let tar = Tar::new()
            .file("f", b"x")
            .symlink("s", "f")
            .file("s/g", b"y")
            .end();
        let e = home2.apply(&tar).unwrap_err();
        assert_eq!(
            e.to_string(),
            "resolve \"s\" (the directory of an entry): \"s\" is a symlink to \"f\", which does \
         not lead to a directory"
        );
        home2.check_canary();
    }
);

case!(apply_long_name_error_is_shortened, |home| {
    // A 5000-byte PAX path whose middle component is too long: the message keeps the start
    // and end of the name and says how long it is, not all 5000 bytes.
    let name = format!("start/{}/end", "m".repeat(4990));
    let tar = Tar::new()
        .pax(&[(b"path", name.as_bytes())])
        .file("placeholder", b"x")
        .end();
    let e = home.apply(&tar).unwrap_err();
    assert!(
        matches!(e, Error::InvalidName { name: ref n, .. } if n == &name),
        "{e:?}"
    );
    let m = e.to_string();
    assert!(m.len() < 300, "message of {} bytes: {m}", m.len());
    assert!(m.starts_with("invalid tar entry name \"start/mmm"), "{m}");
    assert!(m.contains("mmm/end\" (5000 characters)"), "{m}");
});

case!(apply_symlink_then_implied_dirs_are_created_inside, |home| {
    let tar = Tar::new()
        .symlink("a", "/")
        .file("a/x/y/z", b"inside")
        .end();
    home.apply(&tar).unwrap();
    assert_eq!(
        std::fs::read(home.target().join("x/y/z")).unwrap(),
        b"inside"
    );
});

case!(apply_symlink_chain_resolves_inside, |home| {
    let tar = Tar::new()
        .dir("d")
        .symlink("a", "b")
        .symlink("b", "c")
        .symlink("c", "/d")
        .file("a/f", b"inside")
        .end();
    home.apply(&tar).unwrap();
    assert_eq!(std::fs::read(home.target().join("d/f")).unwrap(), b"inside");
});

case!(apply_symlink_loop_is_eloop, |home| {
    let tar = Tar::new()
        .symlink("a", "b")
        .symlink("b", "a")
        .file("a/x", b"x")
        .end();
    let e = home.apply(&tar).unwrap_err();
    assert_eq!(errno(&e), rustix::io::Errno::LOOP.raw_os_error(), "{e:?}");
    assert_eq!(
        e.to_string(),
        "resolve \"a\" (the directory of an entry): \"a\" is a symlink to \"b\", which leads \
         through too many symlinks (a loop?)"
    );
});

case!(apply_proc_magic_link_is_not_followed, |home| {
    let tar = Tar::new()
        .symlink("p", "/proc/self/root")
        .file("p/canary", b"pwned")
        .end();
    let e = home.apply(&tar).unwrap_err();
    assert_eq!(errno(&e), libc_enoent(), "{e:?}");
});

case!(apply_file_over_escaping_symlink_replaces_link, |home| {
    let target = format!("{}/canary", home.home_str());
    let tar = Tar::new().symlink("s", &target).file("s", b"inside").end();
    home.apply(&tar).unwrap();
    let md = std::fs::symlink_metadata(home.target().join("s")).unwrap();
    assert!(md.file_type().is_file());
    assert_eq!(std::fs::read(home.target().join("s")).unwrap(), b"inside");
});

case!(apply_dir_over_escaping_symlink_replaces_link, |home| {
    let tar = Tar::new()
        .symlink("s", &home.home_str())
        .dir("s")
        .file("s/canary", b"inside")
        .end();
    home.apply(&tar).unwrap();
    assert!(std::fs::symlink_metadata(home.target().join("s"))
        .unwrap()
        .is_dir());
    assert_eq!(
        std::fs::read(home.target().join("s/canary")).unwrap(),
        b"inside"
    );
});

case!(
    apply_existing_symlink_in_target_is_not_written_through,
    |home| {
        std::os::unix::fs::symlink(home.path().join("canary"), home.target().join("s")).unwrap();
        home.apply(&Tar::new().file("s", b"inside").end()).unwrap();
        assert!(std::fs::symlink_metadata(home.target().join("s"))
            .unwrap()
            .is_file());
    }
);

case!(apply_hardlink_dotdot_is_escape, |home| {
    let e = home
        .apply(&Tar::new().hardlink("h", "../canary").end())
        .unwrap_err();
    assert!(
        matches!(e, Error::Escape { ref name } if name == "../canary"),
        "{e:?}"
    );
});

case!(
    apply_hardlink_below_a_non_directory_is_a_resolve_error,
    |home| {
        // The target's directory is looked up as a directory (`O_PATH | O_DIRECTORY`): a file or
        // a fifo there is ENOTDIR, and the fifo is never opened (which would block).
        for (parent, tar) in [
            ("f", Tar::new().file("f", b"x")),
            ("p", Tar::new().entry(h("p", b'6').mode(0o644), b"")),
        ] {
            let tar = tar.hardlink("h", &format!("{parent}/x")).end();
            let e = home.apply(&tar).unwrap_err();
            assert!(
                matches!(
                    &e,
                    Error::Resolve { what: "the directory of a hardlink's target", path, .. }
                        if path == parent
                ),
                "{e:?}"
            );
            assert_eq!(errno(&e), rustix::io::Errno::NOTDIR.raw_os_error());
            std::fs::remove_file(home.target().join(parent)).unwrap();
        }
    }
);

case!(apply_hardlink_absolute_host_path_resolves_inside, |home| {
    let t = format!("{}/canary", home.home_str());
    let e = home.apply(&Tar::new().hardlink("h", &t).end()).unwrap_err();
    assert!(matches!(e, Error::Resolve { .. }), "{e:?}");
    assert_eq!(errno(&e), libc_enoent());
    let first = home.path().components().nth(1).unwrap().as_os_str();
    assert!(
        e.to_string().starts_with(&format!(
            "resolve {:?} (the directory of a hardlink's target): {:?} does not exist",
            home.home_str().trim_start_matches('/'),
            first
        )),
        "{e}"
    );
});

case!(apply_hardlink_absolute_in_layer_links_inside, |home| {
    let tar = Tar::new().file("f", b"data").hardlink("h", "/f").end();
    home.apply(&tar).unwrap();
    let a = std::fs::metadata(home.target().join("f")).unwrap();
    let b = std::fs::metadata(home.target().join("h")).unwrap();
    assert_eq!(a.ino(), b.ino());
});

case!(apply_hardlink_through_symlink_stays_inside, |home| {
    let tar = Tar::new()
        .symlink("s", "/..")
        .hardlink("h", "s/canary")
        .end();
    let e = home.apply(&tar).unwrap_err();
    assert_eq!(errno(&e), libc_enoent(), "{e:?}");
});

case!(
    apply_hardlink_to_escaping_symlink_links_the_symlink,
    |home| {
        let t = format!("{}/canary", home.home_str());
        let tar = Tar::new().symlink("s", &t).hardlink("h", "s").end();
        home.apply(&tar).unwrap();
        let md = std::fs::symlink_metadata(home.target().join("h")).unwrap();
        assert!(md.file_type().is_symlink());
        assert_eq!(
            std::fs::read_link(home.target().join("h")).unwrap(),
            Path::new(&t)
        );
    }
);

case!(apply_hardlink_to_directory_is_eperm, |home| {
    let e = home
        .apply(&Tar::new().dir("d").hardlink("h", "d").end())
        .unwrap_err();
    assert!(matches!(e, Error::Fs { op: "hardlink", .. }), "{e:?}");
    assert_eq!(errno(&e), rustix::io::Errno::PERM.raw_os_error());
});

case!(apply_whiteout_of_dotdot_is_invalid, |home| {
    let e = home
        .apply(&Tar::new().file(".wh...", b"").end())
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidName { reason, .. } if reason.contains("whiteout")),
        "{e:?}"
    );
});

case!(apply_whiteout_empty_name_is_invalid, |home| {
    let e = home
        .apply(&Tar::new().file("d/.wh.", b"").end())
        .unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }), "{e:?}");
});

case!(apply_whiteout_climbing_is_escape, |home| {
    let e = home
        .apply(&Tar::new().file("../.wh.canary", b"").end())
        .unwrap_err();
    assert!(e.is_escape(), "{e:?}");
});

case!(apply_whiteout_through_symlink_stays_inside, |home| {
    std::fs::write(home.target().join("canary"), b"layer file").unwrap();
    let tar = Tar::new().symlink("s", "/").file("s/.wh.canary", b"").end();
    home.apply(&tar).unwrap();
    assert!(is_whiteout(&home.target().join("canary")));
});

case!(apply_whiteout_through_host_symlink_fails_inside, |home| {
    let tar = Tar::new()
        .symlink("s", &home.home_str())
        .file("s/.wh.canary", b"")
        .end();
    let e = home.apply(&tar).unwrap_err();
    assert_eq!(errno(&e), libc_enoent(), "{e:?}");
});

case!(
    apply_delete_format_whiteout_through_symlink_stays_inside,
    |home| {
        std::fs::write(home.target().join("canary"), b"layer file").unwrap();
        let o = ApplyOptions {
            whiteouts: WhiteoutFormat::Delete,
            ..Default::default()
        };
        let tar = Tar::new()
            .symlink("s", "..")
            .file("s/.wh.canary", b"")
            .end();
        home.apply_with(&tar, &o).unwrap();
        assert!(!home.target().join("canary").exists());
    }
);

case!(
    apply_delete_format_opaque_through_symlink_stays_inside,
    |home| {
        std::fs::write(home.target().join("keep-not"), b"x").unwrap();
        let o = ApplyOptions {
            whiteouts: WhiteoutFormat::Delete,
            ..Default::default()
        };
        let tar = Tar::new()
            .symlink("s", "/..")
            .file("s/.wh..wh..opq", b"")
            .end();
        home.apply_with(&tar, &o).unwrap();
        // As moby: a marker beneath a symlink empties nothing (and never anything outside).
        let mut names: Vec<_> = std::fs::read_dir(home.target())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["keep-not", "s"]);
    }
);

case!(apply_opaque_through_symlink_marks_inside_dir, |home| {
    let tar = Tar::new()
        .dir("d")
        .symlink("s", "/d")
        .file("s/.wh..wh..opq", b"")
        .end();
    home.apply(&tar).unwrap();
    assert_eq!(
        xattr(&home.target().join("d"), "trusted.overlay.opaque").unwrap(),
        b"y"
    );
});

case!(apply_overlay_xattr_from_tar_is_dropped, |home| {
    let tar = Tar::new()
        .pax(&[
            (b"SCHILY.xattr.trusted.overlay.redirect", b"/../../etc"),
            (b"SCHILY.xattr.trusted.overlay.opaque", b"y"),
            (b"SCHILY.xattr.user.kept", b"1"),
        ])
        .dir("d")
        .end();
    home.apply(&tar).unwrap();
    let d = home.target().join("d");
    assert!(xattr(&d, "trusted.overlay.redirect").is_none());
    assert!(xattr(&d, "trusted.overlay.opaque").is_none());
    assert_eq!(xattr(&d, "user.kept").unwrap(), b"1");
});

case!(apply_nul_in_pax_path_is_invalid, |home| {
    let tar = Tar::new()
        .pax(&[(b"path", b"ok\0../../canary")])
        .file("x", b"")
        .end();
    let e = home.apply(&tar).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidName {
                reason: "contains a NUL byte",
                ..
            }
        ),
        "{e:?}"
    );
});

case!(apply_nul_in_pax_linkpath_is_invalid, |home| {
    let tar = Tar::new()
        .pax(&[(b"linkpath", b"a\0b")])
        .hardlink("x", "y")
        .end();
    let e = home.apply(&tar).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidName {
                reason: "contains a NUL byte",
                ..
            }
        ),
        "{e:?}"
    );
});

case!(apply_overlong_component_is_invalid, |home| {
    let long = "x".repeat(300);
    let tar = Tar::new()
        .pax(&[(b"path", long.as_bytes())])
        .file("x", b"")
        .end();
    let e = home.apply(&tar).unwrap_err();
    assert!(
        matches!(e, Error::InvalidName { reason, .. } if reason.contains("255")),
        "{e:?}"
    );
});

case!(apply_overlong_path_is_invalid, |home| {
    let long = vec!["d"; 2100].join("/");
    let tar = Tar::new()
        .pax(&[(b"path", long.as_bytes())])
        .file("x", b"")
        .end();
    let e = home.apply(&tar).unwrap_err();
    assert!(
        matches!(e, Error::InvalidName { reason, .. } if reason.contains("4095")),
        "{e:?}"
    );
});

case!(apply_huge_pax_header_is_corrupt, |home| {
    let big = vec![b'a'; (1 << 20) + 10];
    let tar = Tar::new().pax(&[(b"comment", &big)]).file("x", b"").end();
    let e = home.apply(&tar).unwrap_err();
    assert!(
        matches!(e, Error::Corrupt { ref reason, .. } if reason.contains("exceeds")),
        "{e:?}"
    );
});

case!(apply_huge_gnu_long_name_is_corrupt, |home| {
    let big = vec![b'a'; (1 << 20) + 10];
    let tar = Tar::new().gnu_long(b'L', &big).file("x", b"").end();
    let e = home.apply(&tar).unwrap_err();
    assert!(e.is_corrupt(), "{e:?}");
});

case!(apply_gnu_long_name_climbing_is_escape, |home| {
    let tar = Tar::new()
        .gnu_long(b'L', b"../canary")
        .file("x", b"pwned")
        .end();
    let e = home.apply(&tar).unwrap_err();
    assert!(e.is_escape(), "{e:?}");
});

case!(apply_gnu_long_link_climbing_is_escape, |home| {
    let tar = Tar::new()
        .gnu_long(b'K', b"../../canary")
        .hardlink("h", "x")
        .end();
    let e = home.apply(&tar).unwrap_err();
    assert!(e.is_escape(), "{e:?}");
});

case!(apply_ustar_prefix_climbing_is_escape, |home| {
    let mut hh = h("canary", b'0');
    hh.prefix = b"..".to_vec();
    let e = home
        .apply(&Tar::new().entry(hh, b"pwned").end())
        .unwrap_err();
    assert!(e.is_escape(), "{e:?}");
});

case!(apply_file_named_dot_is_invalid, |home| {
    let e = home.apply(&Tar::new().file("./", b"").end());
    // A trailing slash with typeflag '0' is a file entry naming the root.
    let e = e.unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }), "{e:?}");
});

case!(apply_bad_checksum_is_corrupt, |home| {
    let mut hh = h("b", b'0');
    hh.bad_checksum = true;
    let tar = Tar::new().file("a", b"ok").entry(hh, b"x").end();
    let e = home.apply(&tar).unwrap_err();
    assert!(
        matches!(e, Error::Corrupt { entry: 1, ref reason } if reason.contains("checksum")),
        "{e:?}"
    );
});

case!(apply_truncated_data_is_unexpected_eof, |home| {
    let mut tar = Tar::new().file("a", &[7u8; 3000]).no_end();
    tar.truncate(512 + 1000);
    let e = home.apply(&tar).unwrap_err();
    assert!(
        matches!(e, Error::Read { ref source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof),
        "{e:?}"
    );
});

case!(
    apply_input_ending_after_a_gnu_long_name_or_link_is_unexpected_eof,
    |home| {
        // An extended header promises an entry: the input may not end before it, whichever kind
        // of extended header it is (PAX alone is covered by the Go fixture's cuts).
        for flag in [b'L', b'K'] {
            let tar = Tar::new()
                .file("a", b"ok")
                .gnu_long(flag, &[b'n'; 200])
                .no_end();
            let e = home.apply(&tar).unwrap_err();
            assert!(
                matches!(e, Error::Read { ref source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof),
                "{}: {e:?}",
                flag as char
            );
        }
    }
);

case!(apply_truncated_header_is_unexpected_eof, |home| {
    let mut tar = Tar::new().file("a", b"ok").file("b", b"x").no_end();
    tar.truncate(1024 + 100);
    let e = home.apply(&tar).unwrap_err();
    assert!(matches!(e, Error::Read { .. }), "{e:?}");
});

case!(apply_zero_block_then_garbage_is_corrupt, |home| {
    let mut tar = Tar::new().file("a", b"ok").no_end();
    tar.extend_from_slice(&[0u8; 512]);
    tar.extend_from_slice(&[b'z'; 512]);
    let e = home.apply(&tar).unwrap_err();
    assert!(
        matches!(e, Error::Corrupt { ref reason, .. } if reason.contains("zero block")),
        "{e:?}"
    );
});

case!(apply_invalid_size_field_is_corrupt, |home| {
    let mut tar = Tar::new().file("a", b"").no_end();
    tar[124..127].copy_from_slice(b"9zz");
    // Fix the checksum so only the size field is wrong.
    tar[148..156].copy_from_slice(b"        ");
    let sum: u64 = tar[..512].iter().map(|&b| u64::from(b)).sum();
    tar[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let e = home.apply(&tar).unwrap_err();
    assert!(
        matches!(e, Error::Corrupt { ref reason, .. } if reason.contains("size")),
        "{e:?}"
    );
});

case!(apply_volume_label_is_unsupported, |home| {
    let e = home
        .apply(&Tar::new().entry(h("label", b'V'), b"").end())
        .unwrap_err();
    assert!(
        matches!(e, Error::UnsupportedType { typeflag: 'V', .. }),
        "{e:?}"
    );
});

case!(apply_unmapped_uid_is_error, |home| {
    let o = ApplyOptions {
        id_maps: IdMaps {
            uids: vec![IdMapping {
                container_id: 0,
                host_id: 100_000,
                size: 1000,
            }],
            gids: vec![IdMapping {
                container_id: 0,
                host_id: 100_000,
                size: 1000,
            }],
        },
        ..Default::default()
    };
    let e = home
        .apply_with(
            &Tar::new().entry(h("f", b'0').owner(5000, 0), b"").end(),
            &o,
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unmapped {
                kind: "uid",
                id: 5000,
                ..
            }
        ),
        "{e:?}"
    );
});

case!(apply_bad_sparse_map_is_corrupt, |home| {
    let tar = Tar::new()
        .pax(&[
            (b"GNU.sparse.size", b"100"),
            (b"GNU.sparse.map", b"0,50,10,50"),
        ])
        .file("s", &[1u8; 100])
        .end();
    let e = home.apply(&tar).unwrap_err();
    assert!(
        matches!(e, Error::Corrupt { ref reason, .. } if reason.contains("sparse")),
        "{e:?}"
    );
});

case!(
    apply_pax_sparse_map_with_too_many_fragments_is_corrupt,
    |home| {
        // A PAX 1.0 sparse map announcing more than 2^20 fragments is refused at its count, before
        // any of them is read; with exactly 2^20 the numbers are read on (here into the padding).
        for (count, why) in [
            ("1048577", "sparse map too large"),
            ("1048576", "bad sparse map number"),
        ] {
            let mut data = format!("{count}\n0\n10\n").into_bytes();
            data.resize(512, 0);
            let tar = Tar::new()
                .pax(&[
                    (b"GNU.sparse.major", b"1"),
                    (b"GNU.sparse.minor", b"0"),
                    (b"GNU.sparse.name", b"s"),
                    (b"GNU.sparse.realsize", b"10"),
                ])
                .file("GNUSparseFile.0/s", &data)
                .end();
            let e = home.apply(&tar).unwrap_err();
            assert!(
                matches!(e, Error::Corrupt { ref reason, .. } if reason == why),
                "{count}: {e:?}"
            );
        }
    }
);

case!(
    apply_pax_sparse_map_number_of_33_characters_is_the_limit,
    |home| {
        // Numbers of the PAX 1.0 sparse map may carry leading zeros up to 33 characters.
        for (zeros, ok) in [(32, true), (33, false)] {
            let n = |v: &str| format!("{}{v}", "0".repeat(zeros));
            let mut data = format!("1\n{}\n{}\n", n("0"), n("4")).into_bytes();
            data.resize(512, 0);
            data.extend_from_slice(b"data");
            let tar = Tar::new()
                .pax(&[
                    (b"GNU.sparse.major", b"1"),
                    (b"GNU.sparse.minor", b"0"),
                    (b"GNU.sparse.name", b"s"),
                    (b"GNU.sparse.realsize", b"10"),
                ])
                .file("GNUSparseFile.0/s", &data)
                .end();
            let r = home.apply(&tar);
            if ok {
                r.unwrap();
                let got = std::fs::read(home.target().join("s")).unwrap();
                assert_eq!(got, b"data\0\0\0\0\0\0");
                std::fs::remove_file(home.target().join("s")).unwrap();
            } else {
                let e = r.unwrap_err();
                assert!(
                    matches!(e, Error::Corrupt { ref reason, .. } if reason == "bad sparse map number"),
                    "{e:?}"
                );
            }
        }
    }
);

fn libc_enoent() -> i32 {
    rustix::io::Errno::NOENT.raw_os_error()
}

/// A small archive full of traps, to be mutated.
fn trap_archive(home: &str) -> Vec<u8> {
    Tar::new()
        .pax(&[(b"path", b"pax/long/name"), (b"SCHILY.xattr.user.a", b"1")])
        .file("ignored", b"pax data")
        .entry(h("g", b'g'), b"")
        .symlink("up", "..")
        .symlink("abs", home)
        .symlink("root", "/")
        .file("up/canary", b"pwned")
        .file("abs/canary", b"pwned")
        .file("root/canary", b"inside")
        .hardlink("hl", "root/canary")
        .gnu_long(b'L', b"gnu/long/name")
        .file("x", b"gnu data")
        .file(".wh.canary", b"")
        .file("root/.wh..wh..opq", b"")
        .dir("d")
        .entry(h("d/fifo", b'6'), b"")
        .end()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 96, ..Default::default() })]

    /// Whatever bytes are flipped, apply never panics and never touches anything beside the
    /// target; an error is fine.
    #[test]
    fn apply_mutated_trap_archive_never_escapes(
        flips in proptest::collection::vec((0usize..20_000, proptest::num::u8::ANY), 1..12),
        format in 0usize..3,
    ) {
        if !require_root("apply_mutated_trap_archive_never_escapes") {
            return Ok(());
        }
        let home = Home::new();
        let mut tar = trap_archive(&home.home_str());
        // Header blocks get valid checksums again, so the mutations reach the entry logic.
        let headers: Vec<usize> = (0..tar.len() / 512)
            .filter(|b| &tar[b * 512 + 257..b * 512 + 262] == b"ustar")
            .collect();
        for (at, b) in &flips {
            let i = at % tar.len();
            tar[i] = *b;
        }
        for b in headers {
            let blk = &mut tar[b * 512..b * 512 + 512];
            blk[148..156].copy_from_slice(b"        ");
            let sum: u64 = blk.iter().map(|&x| u64::from(x)).sum();
            blk[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        }
        let whiteouts = [WhiteoutFormat::Overlay, WhiteoutFormat::OverlayUserXattr, WhiteoutFormat::Delete][format];
        let _ = home.apply_with(&tar, &ApplyOptions { whiteouts, ..Default::default() });
        home.check_canary();
    }
}

#[test]
fn apply_unmutated_trap_archive_is_contained() {
    if !require_root("apply_unmutated_trap_archive_is_contained") {
        return;
    }
    let home = Home::new();
    let tar = trap_archive(&home.home_str());
    // `abs/canary`: inside the root the host path does not exist.
    let e = home.apply(&tar).unwrap_err();
    assert_eq!(errno(&e), libc_enoent(), "{e:?}");
    home.check_canary();
    // Without that entry everything lands inside.
    let home = Home::new();
    let tar = Tar::new()
        .symlink("up", "..")
        .symlink("root", "/")
        .file("up/canary", b"first")
        .file("root/canary", b"inside")
        .hardlink("hl", "root/canary")
        .end();
    home.apply(&tar).unwrap();
    assert_eq!(
        std::fs::read(home.target().join("canary")).unwrap(),
        b"inside"
    );
    assert_eq!(std::fs::read(home.target().join("hl")).unwrap(), b"inside");
    home.check_canary();
}
