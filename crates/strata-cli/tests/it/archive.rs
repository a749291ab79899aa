//! Layer content subcommands: apply (plain, gzip, zstd; file and stdin), diff, changes, size.

use crate::support::Home;
use strata_testkit::images::{gzip, layer_tar, zstd, Entry as E};
use strata_testkit::require_root;

fn base_tar() -> Vec<u8> {
    layer_tar(&[
        E::Dir("etc"),
        E::File("etc/hostname", "base\n"),
        E::File("etc/motd", "hello\n"),
        E::Dir("var"),
        E::File("var/old", "12345"),
    ])
}

/// Creates `base` from [`base_tar`] and a read-write `top` on it; returns the home.
fn home_with_base() -> Home {
    let h = Home::new();
    h.run(&["create", "base"]).ok();
    let f = h.scratch("base.tar");
    std::fs::write(&f, base_tar()).unwrap();
    assert_eq!(h.run(&["apply", "base", f.to_str().unwrap()]).ok(), "16\n");
    h.run(&["create", "--rw", "--parent", "base", "top"]).ok();
    h
}

#[test]
fn apply_file_gzip_and_zstd_stdin_print_size() {
    if !require_root("apply_file_gzip_and_zstd_stdin_print_size") {
        return;
    }
    let h = home_with_base();
    let t = layer_tar(&[E::File("gz", "gzipped\n")]);
    h.run(&["create", "--parent", "base", "g"]).ok();
    let v = h
        .run_stdin(&["--json", "apply", "g", "-"], &gzip(&t))
        .json();
    assert_eq!(
        v,
        serde_json::json!({"id": "g", "size": 8, "compression": "gzip"})
    );
    assert_eq!(
        std::fs::read_to_string(h.path().join("g/diff/gz")).unwrap(),
        "gzipped\n"
    );

    let t = layer_tar(&[E::File("z", "zstd\n")]);
    h.run(&["create", "--parent", "g", "z"]).ok();
    assert_eq!(h.run_stdin(&["apply", "z"], &zstd(&t)).ok(), "5\n");
    let m = h.run(&["mount", "z"]).ok().trim().to_owned();
    for (name, data) in [
        ("z", "zstd\n"),
        ("gz", "gzipped\n"),
        ("etc/motd", "hello\n"),
    ] {
        assert_eq!(
            std::fs::read_to_string(format!("{m}/{name}")).unwrap(),
            data
        );
    }
    h.run(&["umount", "z"]).ok();
}

#[test]
fn apply_missing_file_exits_3_corrupt_input_exits_4() {
    if !require_root("apply_missing_file_exits_3_corrupt_input_exits_4") {
        return;
    }
    let h = Home::new();
    h.run(&["create", "a"]).ok();
    let e = h
        .run(&["apply", "a", "/nonexistent/layer.tar"])
        .fails(3)
        .to_owned();
    assert!(e.contains("/nonexistent/layer.tar"), "{e}");
    let mut bad = gzip(&layer_tar(&[E::File("x", "data")]));
    bad.truncate(bad.len() / 2);
    let e = h.run_stdin(&["apply", "a"], &bad).fails(4).to_owned();
    assert!(e.contains("apply standard input (gzip) to layer a"), "{e}");
    h.run(&["apply", "ghost", "-"]).fails(3);
}

#[test]
fn changes_sorted_letters_and_json_words() {
    if !require_root("changes_sorted_letters_and_json_words") {
        return;
    }
    let h = home_with_base();
    let m = h.run(&["mount", "top"]).ok().trim().to_owned();
    std::fs::write(format!("{m}/etc/motd"), "changed\n").unwrap();
    std::fs::write(format!("{m}/new"), "n").unwrap();
    std::fs::remove_file(format!("{m}/var/old")).unwrap();
    h.run(&["umount", "top"]).ok();
    assert_eq!(
        h.run(&["changes", "top"]).ok(),
        "C /etc\nC /etc/motd\nA /new\nC /var\nD /var/old\n"
    );
    let v = h.run(&["changes", "top", "--json"]).json();
    assert_eq!(
        v,
        serde_json::json!({"changes": [
            {"path": "/etc", "kind": "modify"}, {"path": "/etc/motd", "kind": "modify"},
            {"path": "/new", "kind": "add"}, {"path": "/var", "kind": "modify"},
            {"path": "/var/old", "kind": "delete"}]})
    );
}

#[test]
fn diff_to_file_applies_onto_fresh_child_with_same_size() {
    if !require_root("diff_to_file_applies_onto_fresh_child_with_same_size") {
        return;
    }
    let h = home_with_base();
    let m = h.run(&["mount", "top"]).ok().trim().to_owned();
    std::fs::write(format!("{m}/added"), "0123456789").unwrap();
    std::fs::remove_file(format!("{m}/etc/hostname")).unwrap();
    h.run(&["umount", "top"]).ok();
    let size = h.run(&["size", "top"]).ok().trim().to_owned();
    let v = h.run(&["--json", "size", "top"]).json();
    assert_eq!(v["id"], "top");
    assert_eq!(v["size"].to_string(), size);

    let out = h.scratch("top.tar");
    assert_eq!(
        h.run(&["diff", "top", "-o", out.to_str().unwrap()]).ok(),
        ""
    );
    let tar = std::fs::read(&out).unwrap();
    let names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "added"), "{names:?}");
    assert!(names.iter().any(|n| n == "etc/.wh.hostname"), "{names:?}");
    // The same tar through stdout.
    let stdout = h.cmd(&["diff", "top"]).output().unwrap();
    assert_eq!(stdout.status.code(), Some(0));
    assert_eq!(stdout.stdout, tar, "diff output is deterministic");

    h.run(&["create", "--parent", "base", "copy"]).ok();
    assert_eq!(
        h.run(&["apply", "copy", out.to_str().unwrap()]).ok().trim(),
        size
    );
    h.run(&["create", "--rw", "--parent", "copy", "view"]).ok();
    let m = h.run(&["mount", "view"]).ok().trim().to_owned();
    assert_eq!(
        std::fs::read_to_string(format!("{m}/added")).unwrap(),
        "0123456789"
    );
    assert!(!std::path::Path::new(&format!("{m}/etc/hostname")).exists());
    assert!(std::path::Path::new(&format!("{m}/etc/motd")).exists());
    h.run(&["umount", "view"]).ok();
}

#[test]
fn diff_with_parent_flag_against_grandparent() {
    if !require_root("diff_with_parent_flag_against_grandparent") {
        return;
    }
    let h = home_with_base();
    h.run(&["create", "--parent", "base", "mid"]).ok();
    let f = h.scratch("mid.tar");
    std::fs::write(&f, layer_tar(&[E::File("mid", "m")])).unwrap();
    h.run(&["apply", "mid", f.to_str().unwrap()]).ok();
    h.run(&["create", "--parent", "mid", "up"]).ok();
    std::fs::write(&f, layer_tar(&[E::File("up", "u")])).unwrap();
    h.run(&["apply", "up", f.to_str().unwrap()]).ok();
    assert_eq!(h.run(&["changes", "up"]).ok(), "A /up\n");
    assert_eq!(
        h.run(&["changes", "up", "--parent", "base"]).ok(),
        "A /mid\nA /up\n"
    );
    assert_eq!(h.run(&["size", "up", "--parent", "base"]).ok(), "2\n");
}
