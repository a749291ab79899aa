//! `strata orphans` on a constructed Docker data root: the home defaults to DIR/overlay2, exit
//! codes (1 while orphans remain, 0 when none or all removed, 4 for a directory that is not a
//! data root), the JSON shape, and --prune.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{bin, Home, Run};
use strata_testkit::require_root;

fn orphans(root: &Path, extra: &[&str]) -> Run {
    let out = Command::new(bin())
        .arg("orphans")
        .arg("--docker-root")
        .arg(root)
        .args(extra)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn orphans_lists_prunes_and_exits_like_check() {
    if !require_root("orphans_lists_prunes_and_exits_like_check") {
        return;
    }
    let h = Home::new();
    let root = h.path();
    let home = root.join("overlay2");
    let home_s = home.to_str().unwrap();
    let s = |args: &[&str]| {
        let out = Command::new(bin())
            .arg("--home")
            .arg(home_s)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    s(&["create", "base"]);
    s(&["create", "--parent", "base", "leaked"]);
    std::fs::write(home.join("leaked/diff/junk"), vec![1u8; 100_000]).unwrap();
    let chain = root.join("image/overlay2/layerdb/sha256/c1");
    std::fs::create_dir_all(&chain).unwrap();
    std::fs::write(chain.join("cache-id"), "base").unwrap();
    std::fs::create_dir_all(root.join("containers")).unwrap();

    // The home defaults to DIR/overlay2 (not the global /var/lib/strata).
    let r = orphans(root, &[]);
    assert_eq!(r.code, 1, "{} {}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("orphan leaked "), "{}", r.stdout);
    assert!(r.stdout.contains("1 orphan(s)"), "{}", r.stdout);
    let r = orphans(root, &["--json", "--home", home_s]);
    assert_eq!(r.code, 1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["pruned"], false);
    assert_eq!(v["remaining"], 1);
    assert_eq!(v["orphans"][0]["id"], "leaked");
    assert_eq!(v["orphans"][0]["removed"], false);
    assert!(v["orphans"][0]["size"].as_u64().unwrap() >= 100_000);
    assert_eq!(v["reclaimable"], v["orphans"][0]["size"]);
    assert_eq!(v["in_use"][0]["id"], "base");
    assert_eq!(v["in_use"][0]["by"][0]["kind"], "image-layer");
    assert_eq!(v["in_use"][0]["by"][0]["chain_id"], "c1");
    assert_eq!(v["daemons"], serde_json::json!([]));

    let r = orphans(root, &["--prune", "--json"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["pruned"], true);
    assert_eq!(v["remaining"], 0);
    assert_eq!(v["orphans"][0]["removed"], true);
    assert!(!home.join("leaked").exists());
    assert!(home.join("base/diff").is_dir());
    let r = orphans(root, &[]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("no orphans in "), "{}", r.stdout);
}

#[test]
fn orphans_refuses_a_directory_that_is_not_a_data_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("overlay2")).unwrap();
    let r = orphans(dir.path(), &[]);
    let err = r.fails(4);
    assert!(
        err.contains("is not the data root of a dockerd on overlay2"),
        "{err}"
    );
    assert!(r.stdout.is_empty());
}
