//! Layers left incomplete, end to end: `strata load` killed with SIGKILL while a layer streams
//! in leaves that layer marked; `check` reports it, `create --parent` and `mount` refuse it,
//! `check --repair` removes it, and a new load redoes it. And a mount whose lower layer was
//! removed names it.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use strata_image::Digest;
use strata_testkit::images::{docker_save, docker_save_files, files_tar};
use strata_testkit::require_root;

use crate::support::Home;

/// SIGKILLs and reaps the child, also when the test fails.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two layers; the top one has enough files that half of its tar is a real, partial apply.
fn image() -> (Vec<Vec<u8>>, Vec<Digest>) {
    let base = files_tar(&[("etc/base", "base\n")]);
    let names: Vec<String> = (0..64).map(|i| format!("data/f{i:02}")).collect();
    let content = "y".repeat(1000);
    let files: Vec<(&str, &str)> = names
        .iter()
        .map(|n| (n.as_str(), content.as_str()))
        .collect();
    let top = files_tar(&files);
    let ids = vec![Digest::of(&base), Digest::of(&top)];
    (vec![base, top], ids)
}

/// Runs `strata load` on an unpacked docker-save directory whose top layer blob is a FIFO, feeds
/// it half of that layer, waits until the loader has created the layer and is blocked reading
/// the rest, and kills it.
fn load_killed_midway(h: &Home, layers: &[Vec<u8>], ids: &[Digest], top: &str) {
    let dir = h.scratch(&format!("unpacked-{}", rand_suffix()));
    std::fs::create_dir(&dir).unwrap();
    let files = docker_save_files(layers, ids, "test:1");
    let top_blob = &files[1].0;
    for (name, data) in &files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        if name == top_blob {
            let ok = std::process::Command::new("mkfifo")
                .arg(&p)
                .status()
                .unwrap();
            assert!(ok.success());
        } else {
            std::fs::write(&p, data).unwrap();
        }
    }
    let loader = KillOnDrop(
        h.cmd(&["load", dir.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let fifo = open_writer(&dir.join(top_blob));
    let mut fifo = fifo;
    let half = &layers[1][..layers[1].len() / 2];
    fifo.write_all(half).unwrap();
    // The loader has created the layer and applied part of it (into the layer, or into the
    // staging directory of an all-or-nothing apply), and cannot finish without the rest.
    let started = Instant::now();
    while !applying(h, top) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the loader never started applying the layer"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(loader);
    drop(fifo);
}

/// Whether part of layer `top`'s tar has landed.
fn applying(h: &Home, top: &str) -> bool {
    if !h.path().join(top).is_dir() {
        return false;
    }
    if h.path().join(top).join("diff/data").is_dir() {
        return true;
    }
    let staging = h.path().join(".strata/staging");
    std::fs::read_dir(staging).unwrap().any(|e| {
        let e = e.unwrap();
        e.file_name()
            .to_string_lossy()
            .starts_with(&format!("apply-{top}."))
            && e.path().join("data").is_dir()
    })
}

/// Opens the FIFO for writing once the loader opens it for reading (the open blocks until
/// then, so it runs on a thread the test stops waiting for if the loader never gets there).
fn open_writer(fifo: &Path) -> std::fs::File {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::OpenOptions::new().write(true).open(path));
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the loader never opened the layer blob")
        .unwrap()
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn load_killed_midway_leaves_layer_reported_refused_repaired_and_reloaded() {
    if !require_root("load_killed_midway_leaves_layer_reported_refused_repaired_and_reloaded") {
        return;
    }
    let h = Home::new();
    let (layers, ids) = image();
    let base = ids[0].hex().to_owned();
    let top = Digest::chain(Some(&ids[0]), &ids[1]).hex().to_owned();

    load_killed_midway(&h, &layers, &ids, &top);
    // Reported, and exit 1 while it is there.
    let out = h.run(&["check"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!(
            "incomplete-layer {}",
            h.path().join(&top).display()
        )),
        "{}",
        out.stdout
    );
    let v = h.run(&["--json", "check"]);
    assert_eq!(v.code, 1);
    let v: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
    // The kill also left the apply's staging directory (the layer streams into it).
    let mut kinds: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["incomplete-layer", "leftover-staging"], "{v}");
    // Neither built on nor mounted.
    let e = h
        .run(&["create", "--rw", "--parent", &top, "c"])
        .fails(4)
        .to_owned();
    assert!(
        e.contains(&format!("layer {top}, below layer c, is incomplete"))
            && e.contains("check --repair"),
        "{e}"
    );
    assert_eq!(h.run(&["exists", "c"]).code, 1);
    let e = h.run(&["mount", &top]).fails(4).to_owned();
    assert!(
        e.contains(&format!("layer {top} is incomplete")) && e.contains("check --repair"),
        "{e}"
    );
    // Repair removes it and nothing else.
    let r = h.run(&["check", "--repair"]);
    assert!(r.ok().contains("(repaired)"), "{}", r.stdout);
    h.run(&["check"]).ok();
    assert_eq!(h.run(&["ls"]).ok(), format!("{base}\n"));

    // Killed again; this time a new load redoes the layer by itself.
    load_killed_midway(&h, &layers, &ids, &top);
    assert_eq!(h.run(&["check"]).code, 1);
    let archive = h.scratch("img.tar");
    docker_save(&archive, &layers, &ids, "test:1");
    let v = h.run(&["--json", "load", archive.to_str().unwrap()]).json();
    let l = v["images"][0]["layers"].as_array().unwrap().clone();
    assert_eq!(l[0]["reused"], true);
    assert_eq!(
        l[1]["reused"], false,
        "the incomplete layer is loaded again"
    );
    // Only the killed apply's staging directory (if it got that far) is left, for repair.
    let v = h.run(&["--json", "check"]);
    let v: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
    assert!(
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["kind"] == "leftover-staging"),
        "{v}"
    );
    h.run(&["check", "--repair"]).ok();
    h.run(&["check"]).ok();
    h.run(&["create", "--rw", "--parent", &top, "c"]).ok();
    let m = h.run(&["mount", "c"]).ok().trim().to_owned();
    assert_eq!(std::fs::read_dir(format!("{m}/data")).unwrap().count(), 64);
    assert_eq!(
        std::fs::read_to_string(format!("{m}/etc/base")).unwrap(),
        "base\n"
    );
    h.run(&["umount", "c"]).ok();
}

#[test]
fn apply_that_fails_into_a_non_empty_layer_is_reported_and_repaired() {
    if !require_root("apply_that_fails_into_a_non_empty_layer_is_reported_and_repaired") {
        return;
    }
    let h = Home::new();
    h.run(&["create", "base"]).ok();
    h.run_stdin(&["apply", "base"], &files_tar(&[("a", "a")]))
        .ok();
    let full = files_tar(&[("b", "b"), ("c", &"c".repeat(4096))]);
    h.run_stdin(&["apply", "base"], &full[..512 * 3 + 100])
        .fails(4);
    let out = h.run(&["check"]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("incomplete-layer"), "{}", out.stdout);
    h.run(&["create", "--parent", "base", "child"]).fails(4);
    h.run(&["check", "--repair"]).ok();
    assert_eq!(h.run(&["ls"]).ok(), "");
}

#[test]
fn mount_of_layer_whose_parent_was_removed_names_it() {
    if !require_root("mount_of_layer_whose_parent_was_removed_names_it") {
        return;
    }
    let h = Home::new();
    h.run(&["create", "base"]).ok();
    h.run(&["create", "--rw", "--parent", "base", "child"]).ok();
    let link = std::fs::read_to_string(h.path().join("base/link")).unwrap();
    h.run(&["rm", "--force", "base"]).ok();
    for args in [&["mount", "child"][..], &["metadata", "child"][..]] {
        let e = h.run(args).fails(4).to_owned();
        assert!(
            e.contains(&format!("its lower layer with short link l/{link}"))
                && e.contains("is missing")
                && e.contains("strata check"),
            "{args:?}: {e}"
        );
    }
}
