//! Store subcommands: status, create, rm, exists, ls, mount, umount, metadata, cleanup, check,
//! and the exit codes and JSON shapes around them.

use std::process::Stdio;

use crate::support::Home;
use strata_testkit::{mounts_under, require_root};

#[test]
fn status_json_has_home_driver_and_pairs() {
    if !require_root("status_json_has_home_driver_and_pairs") {
        return;
    }
    let h = Home::new();
    let v = h.run(&["--json", "status"]).json();
    assert_eq!(v["home"], h.path().to_str().unwrap());
    assert_eq!(v["driver"], "overlay2");
    let pairs = v["status"].as_array().unwrap();
    assert!(pairs
        .iter()
        .any(|p| p[0] == "Backing Filesystem" && p[1].is_string()));
    let text = h.run(&["status"]);
    assert!(text.ok().contains("Supports d_type: "), "{}", text.stdout);
}

#[test]
fn create_ls_rm_lists_exactly_the_layers() {
    if !require_root("create_ls_rm_lists_exactly_the_layers") {
        return;
    }
    let h = Home::new();
    h.run(&["create", "base"]).ok();
    h.run(&["create", "--parent", "base", "--rw", "top"]).ok();
    assert_eq!(h.run(&["ls"]).ok(), "base\ntop\n");
    assert_eq!(
        h.run(&["ls", "--json"]).json(),
        serde_json::json!({"layers": ["base", "top"]})
    );
    h.run(&["rm", "top"]).ok();
    h.run(&["rm", "top"]).ok(); // idempotent
    assert_eq!(h.run(&["ls"]).ok(), "base\n");
}

#[test]
fn exists_present_is_0_absent_is_1() {
    if !require_root("exists_present_is_0_absent_is_1") {
        return;
    }
    let h = Home::new();
    h.run(&["create", "base"]).ok();
    assert_eq!(h.run(&["exists", "base"]).ok(), "");
    h.run(&["exists", "nope"]).fails(1);
    let v = h.run(&["--json", "exists", "base"]).json();
    assert_eq!(v, serde_json::json!({"id": "base", "exists": true}));
    let no = h.run(&["exists", "nope", "--json"]);
    assert_eq!(no.code, 1);
    assert_eq!(no.stdout.trim(), r#"{"id":"nope","exists":false}"#);
}

#[test]
fn errors_have_documented_exit_codes_and_name_the_object() {
    if !require_root("errors_have_documented_exit_codes_and_name_the_object") {
        return;
    }
    let h = Home::new();
    // usage: bad flags, bad id, unknown driver option
    h.run(&["frobnicate"]).fails(2);
    h.run(&["create"]).fails(2);
    let e = h.run(&["create", "../evil"]).fails(2).to_owned();
    assert!(e.contains("invalid layer id"), "{e}");
    let e = h
        .run(&["--storage-opt", "overlay2.bogus=1", "ls"])
        .fails(2)
        .to_owned();
    assert!(e.contains("overlay2.bogus"), "{e}");
    let e = h
        .run(&["create", "--opt", "nokey", "x"])
        .fails(2)
        .to_owned();
    assert!(e.contains("KEY=VAL"), "{e}");
    // not found: layer, parent
    let e = h.run(&["mount", "ghost"]).fails(3).to_owned();
    assert!(e.contains("ghost"), "{e}");
    let e = h
        .run(&["create", "--parent", "ghost", "child"])
        .fails(3)
        .to_owned();
    assert!(e.contains("ghost"), "{e}");
    h.run(&["metadata", "ghost"]).fails(3);
    // other: the layer exists already
    h.run(&["create", "dup"]).ok();
    let e = h.run(&["create", "dup"]).fails(4).to_owned();
    assert!(e.starts_with("strata: error: create layer dup"), "{e}");
    // --help is not an error
    assert!(h.run(&["--help"]).ok().contains("load"));
}

#[test]
fn create_rw_size_quota_or_clear_refusal() {
    if !require_root("create_rw_size_quota_or_clear_refusal") {
        return;
    }
    let h = Home::new();
    h.run(&["create", "base"]).ok();
    let status = h.run(&["--json", "status"]).json();
    let quota = status["status"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p[0] == "Project Quota" && p[1] == "true");
    let r = h.run(&["create", "--rw", "--parent", "base", "--size", "10M", "c"]);
    if quota {
        r.ok();
    } else {
        let e = r.fails(2);
        assert!(e.contains("create layer c"), "{e}");
        h.run(&["exists", "c"]).fails(1);
    }
    // A size on a read-only layer is never accepted.
    h.run(&["create", "--size", "10M", "ro"]).fails(2);
}

#[test]
fn mount_two_processes_share_one_mount_two_umounts_release() {
    if !require_root("mount_two_processes_share_one_mount_two_umounts_release") {
        return;
    }
    let h = Home::new();
    h.run(&["create", "base"]).ok();
    h.run(&["create", "--rw", "--parent", "base", "top"]).ok();
    let a = h.run(&["mount", "top"]).ok().trim().to_owned();
    let b = h.run(&["mount", "top"]).ok().trim().to_owned();
    assert_eq!(a, b);
    assert_eq!(a, h.path().join("top/merged").to_str().unwrap());
    assert_eq!(
        mounts_under(h.path()),
        vec![a.clone()],
        "one mount for two users"
    );
    std::fs::write(format!("{a}/hello"), "hi").unwrap();
    h.run(&["umount", "top"]).ok();
    assert_eq!(mounts_under(h.path()), vec![a.clone()], "still used once");
    h.run(&["umount", "top"]).ok();
    assert!(mounts_under(h.path()).is_empty());
    assert_eq!(
        std::fs::read_to_string(h.path().join("top/diff/hello")).unwrap(),
        "hi"
    );
}

#[test]
fn mount_json_and_base_layer_is_its_diff_dir() {
    if !require_root("mount_json_and_base_layer_is_its_diff_dir") {
        return;
    }
    let h = Home::new();
    h.run(&["create", "base"]).ok();
    let v = h.run(&["--json", "mount", "base"]).json();
    assert_eq!(v["id"], "base");
    assert_eq!(v["path"], h.path().join("base/diff").to_str().unwrap());
    assert!(
        mounts_under(h.path()).is_empty(),
        "a parent-less layer is not mounted"
    );
    h.run(&["umount", "base"]).ok();
}

#[test]
fn metadata_text_and_json_name_the_dirs() {
    if !require_root("metadata_text_and_json_name_the_dirs") {
        return;
    }
    let h = Home::new();
    h.run(&["create", "base"]).ok();
    h.run(&["create", "--rw", "--parent", "base", "top"]).ok();
    let v = h.run(&["metadata", "top", "--json"]).json();
    let home = h.path().to_str().unwrap();
    assert_eq!(v["UpperDir"], format!("{home}/top/diff"));
    assert_eq!(v["WorkDir"], format!("{home}/top/work"));
    assert_eq!(v["MergedDir"], format!("{home}/top/merged"));
    assert_eq!(v["LowerDir"], format!("{home}/base/diff"));
    let text = h.run(&["metadata", "top"]);
    assert!(
        text.ok().contains(&format!("UpperDir={home}/top/diff\n")),
        "{}",
        text.stdout
    );
}

#[test]
fn cleanup_unmounts_everything() {
    if !require_root("cleanup_unmounts_everything") {
        return;
    }
    let h = Home::new();
    h.run(&["create", "base"]).ok();
    h.run(&["create", "--rw", "--parent", "base", "a"]).ok();
    h.run(&["create", "--rw", "--parent", "base", "b"]).ok();
    h.run(&["mount", "a"]).ok();
    h.run(&["mount", "b"]).ok();
    assert_eq!(mounts_under(h.path()).len(), 2);
    h.run(&["cleanup"]).ok();
    assert!(mounts_under(h.path()).is_empty());
}

#[test]
fn check_damage_exits_1_repair_exits_0_then_clean() {
    if !require_root("check_damage_exits_1_repair_exits_0_then_clean") {
        return;
    }
    let h = Home::new();
    h.run(&["create", "base"]).ok();
    h.run(&["create", "--parent", "base", "top"]).ok();
    assert_eq!(h.run(&["check"]).ok(), "no problems found\n");
    let v = h.run(&["check", "--json"]).json();
    assert_eq!(v["clean"], true);
    assert_eq!(v["problems"], serde_json::json!([]));
    // Damage: the short link of base is gone.
    let link = std::fs::read_to_string(h.path().join("base/link")).unwrap();
    std::fs::remove_file(h.path().join("l").join(link.trim())).unwrap();
    let r = h.run(&["check"]);
    r.fails(1);
    assert!(r.stdout.contains("run with --repair"), "{}", r.stdout);
    let r = h.run(&["--json", "check"]);
    assert_eq!(r.code, 1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["clean"], false);
    let p = &v["problems"][0];
    assert!(p["kind"].is_string() && p["path"].is_string() && p["detail"].is_string());
    assert_eq!(p["repaired"], false);
    let v = h.run(&["check", "--repair", "--json"]).json();
    assert_eq!(v["repaired_all"], true);
    assert_eq!(v["problems"][0]["repaired"], true);
    h.run(&["check"]).ok();
    assert!(h.path().join("l").join(link.trim()).exists());
}

#[test]
fn ls_into_closed_pipe_exits_0() {
    if !require_root("ls_into_closed_pipe_exits_0") {
        return;
    }
    let h = Home::new();
    for i in 0..50 {
        h.run(&["create", &format!("layer{i}")]).ok();
    }
    let mut child = h
        .cmd(&["ls"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before anything is written
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
