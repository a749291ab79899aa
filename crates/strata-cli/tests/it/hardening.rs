//! What a careless user does: misuse of flags and paths gets one clear line and the documented
//! exit code, and nothing in the home changes.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support::{bin, Home};
use strata_testkit::images::{layer_tar, Entry as E};
use strata_testkit::require_root;

#[test]
fn apply_missing_parent_exits_3_self_parent_exits_2_and_nothing_applied() {
    if !require_root("apply_missing_parent_exits_3_self_parent_exits_2_and_nothing_applied") {
        return;
    }
    let h = Home::new();
    h.run(&["create", "base"]).ok();
    let f = h.scratch("l.tar");
    std::fs::write(&f, layer_tar(&[E::File("x", "data")])).unwrap();
    let file = f.to_str().unwrap();
    let e = h
        .run(&["apply", "base", "--parent", "ghost", file])
        .fails(3)
        .to_owned();
    assert!(e.contains("ghost"), "{e}");
    let e = h
        .run(&["apply", "base", "--parent", "base", file])
        .fails(2)
        .to_owned();
    assert!(e.contains("names the layer itself"), "{e}");
    let e = h.run(&["apply", "ghost", file]).fails(3).to_owned();
    assert!(e.contains("ghost"), "{e}");
    assert!(!h.path().join("base/diff/x").exists(), "nothing applied");
}

#[test]
fn apply_against_other_parent_prints_the_layer_size_like_size() {
    if !require_root("apply_against_other_parent_prints_the_layer_size_like_size") {
        return;
    }
    let h = Home::new();
    h.run(&["create", "base"]).ok();
    h.run(&["create", "--parent", "base", "mid"]).ok();
    h.run(&["create", "--rw", "--parent", "mid", "top"]).ok();
    let f = h.scratch("l.tar");
    // 5 bytes of content in a tar of several KiB: the figure is the layer's, not the tar's.
    std::fs::write(&f, layer_tar(&[E::File("five", "12345")])).unwrap();
    let printed = h
        .run(&["apply", "top", "--parent", "base", f.to_str().unwrap()])
        .ok()
        .to_owned();
    let size = h.run(&["size", "top"]).ok().to_owned();
    assert_eq!(printed, size);
    assert_eq!(printed, "5\n");
    let v = h
        .run(&[
            "--json",
            "apply",
            "top",
            "--parent",
            "base",
            f.to_str().unwrap(),
        ])
        .json();
    assert_eq!(v["size"], 5);
}

#[test]
fn rm_layer_with_children_refused_unless_force() {
    if !require_root("rm_layer_with_children_refused_unless_force") {
        return;
    }
    let h = Home::new();
    h.run(&["create", "base"]).ok();
    h.run(&["create", "--parent", "base", "mid"]).ok();
    h.run(&["create", "--rw", "--parent", "mid", "top"]).ok();
    let e = h.run(&["rm", "base"]).fails(2).to_owned();
    assert!(e.contains("mid, top"), "{e}");
    assert!(e.contains("--force"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    h.run(&["exists", "base"]).ok();
    let e = h.run(&["rm", "mid"]).fails(2).to_owned();
    assert!(e.contains("top"), "{e}");
    // A leaf goes; then its parent has no children left.
    h.run(&["rm", "top"]).ok();
    h.run(&["rm", "mid"]).ok();
    h.run(&["create", "--rw", "--parent", "base", "c"]).ok();
    h.run(&["rm", "--force", "base"]).ok();
    h.run(&["exists", "base"]).fails(1);
}

#[test]
fn usage_errors_are_one_line_with_exit_2() {
    if !require_root("usage_errors_are_one_line_with_exit_2") {
        return;
    }
    let h = Home::new();
    for args in [
        &["frobnicate"][..],
        &["create"][..],
        &["create", "--bogus", "x"][..],
        &["mount", "../x"][..],
    ] {
        let e = h.run(args).fails(2).to_owned();
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(e.starts_with("strata: error: "), "{args:?}: {e}");
    }
    let e = h.run(&["create"]).fails(2).to_owned();
    assert!(
        e.contains("<ID>") && e.contains("usage: strata create"),
        "{e}"
    );
}

#[test]
fn home_that_is_a_file_is_a_usage_error_naming_it() {
    if !require_root("home_that_is_a_file_is_a_usage_error_naming_it") {
        return;
    }
    let h = Home::new();
    let f = h.scratch("not-a-dir");
    std::fs::write(&f, "x").unwrap();
    let out = Command::new(bin())
        .arg("--home")
        .arg(&f)
        .arg("ls")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("is not a directory"), "{e}");
    assert!(!e.contains("File exists"), "{e}");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "x");
}

#[test]
fn new_home_is_0700_under_umask_000() {
    if !require_root("new_home_is_0700_under_umask_000") {
        return;
    }
    let h = Home::new();
    let home = h.scratch("deep/new-home");
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" --home \"$1\" ls")
        .arg(bin())
        .arg(&home)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mode = std::fs::metadata(&home).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "home mode {mode:o}");
    for sub in ["l", ".strata", ".strata/locks", ".strata/mounts"] {
        let m = std::fs::metadata(home.join(sub))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(m & 0o077, 0, "{sub} is {m:o}");
    }
}
