//! `strata load` of docker-save and OCI archives built here: chain ids, reuse, digest checks.

use strata_image::Digest;

use crate::support::Home;
use strata_testkit::images::{docker_save, gzip, layer_tar, oci_archive, zstd, Entry as E, Oci};
use strata_testkit::{mounts_under, require_root};

fn layers() -> (Vec<Vec<u8>>, Vec<Digest>) {
    let l0 = layer_tar(&[
        E::Dir("bin"),
        E::File("bin/tool", "#!/bin/sh\n"),
        E::Dir("etc"),
        E::File("etc/remove-me", "old"),
    ]);
    let l1 = layer_tar(&[E::Whiteout("etc/remove-me"), E::File("etc/added", "new\n")]);
    let ids = vec![Digest::of(&l0), Digest::of(&l1)];
    (vec![l0, l1], ids)
}

#[test]
fn load_docker_save_prints_top_chain_id_and_content_is_visible() {
    if !require_root("load_docker_save_prints_top_chain_id_and_content_is_visible") {
        return;
    }
    let h = Home::new();
    let (ls, ids) = layers();
    let a = h.scratch("img.tar");
    docker_save(&a, &ls, &ids, "test:1");
    let top = Digest::chain(Some(&ids[0]), &ids[1]);
    assert_eq!(
        h.run(&["load", a.to_str().unwrap()]).ok(),
        format!("{}\n", top.hex())
    );
    let mut expected = [ids[0].hex().to_owned(), top.hex().to_owned()];
    expected.sort();
    assert_eq!(h.run(&["ls"]).ok(), format!("{}\n", expected.join("\n")));
    h.run(&["create", "--rw", "--parent", top.hex(), "c"]).ok();
    let m = h.run(&["mount", "c"]).ok().trim().to_owned();
    assert_eq!(
        std::fs::read_to_string(format!("{m}/etc/added")).unwrap(),
        "new\n"
    );
    assert_eq!(
        std::fs::read_to_string(format!("{m}/bin/tool")).unwrap(),
        "#!/bin/sh\n"
    );
    assert!(!std::path::Path::new(&format!("{m}/etc/remove-me")).exists());
    h.run(&["umount", "c"]).ok();
    assert!(mounts_under(h.path()).is_empty());
}

#[test]
fn load_oci_archive_reuses_shared_base_layer() {
    if !require_root("load_oci_archive_reuses_shared_base_layer") {
        return;
    }
    let h = Home::new();
    let (ls, ids) = layers();
    let a = h.scratch("img.tar");
    docker_save(&a, &ls, &ids, "test:1");
    h.run(&["load", a.to_str().unwrap()]).ok();

    // Same base, a different second layer, compressed blobs.
    let other = layer_tar(&[E::File("other", "x")]);
    let oci_ids = vec![ids[0].clone(), Digest::of(&other)];
    let o = h.scratch("oci.tar");
    oci_archive(&o, &[gzip(&ls[0]), zstd(&other)], &oci_ids, &Oci::default());
    let v = h.run(&["--json", "load", o.to_str().unwrap()]).json();
    let img = &v["images"][0];
    assert_eq!(img["tags"], serde_json::json!(["test:oci"]));
    let top = Digest::chain(Some(&oci_ids[0]), &oci_ids[1]);
    assert_eq!(img["top"], top.hex());
    let l = img["layers"].as_array().unwrap();
    assert_eq!(l.len(), 2);
    assert_eq!(l[0]["reused"], true);
    assert_eq!(l[0]["id"], ids[0].hex());
    assert_eq!(l[0]["size"], serde_json::Value::Null);
    assert_eq!(l[1]["reused"], false);
    assert_eq!(l[1]["compression"], "zstd");
    assert_eq!(l[1]["diff_id"], oci_ids[1].to_string());
    assert_eq!(l[1]["chain_id"], top.to_string());
    assert_eq!(l[1]["size"], 1);
    assert_eq!(h.run(&["ls"]).ok().lines().count(), 3);
    // Loading it again reuses everything.
    let v = h.run(&["--json", "load", o.to_str().unwrap()]).json();
    assert!(v["images"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["reused"] == true));
}

#[test]
fn load_wrong_diff_id_is_refused_and_leaves_no_layer() {
    if !require_root("load_wrong_diff_id_is_refused_and_leaves_no_layer") {
        return;
    }
    let h = Home::new();
    let (ls, mut ids) = layers();
    ids[0] = Digest::of(b"not the layer");
    let a = h.scratch("bad.tar");
    docker_save(&a, &ls, &ids, "test:1");
    let e = h.run(&["load", a.to_str().unwrap()]).fails(4).to_owned();
    assert!(e.contains("diff id mismatch"), "{e}");
    assert!(e.contains(a.to_str().unwrap()), "{e}");
    assert_eq!(h.run(&["ls"]).ok(), "");
    h.run(&["check"]).ok();
}

#[test]
fn load_gzip_archive_from_stdin_and_missing_file_exits_3() {
    if !require_root("load_gzip_archive_from_stdin_and_missing_file_exits_3") {
        return;
    }
    let h = Home::new();
    let (ls, ids) = layers();
    let a = h.scratch("img.tar");
    docker_save(&a, &ls, &ids, "test:1");
    let gz = gzip(&std::fs::read(&a).unwrap());
    let top = Digest::chain(Some(&ids[0]), &ids[1]);
    assert_eq!(
        h.run_stdin(&["load", "-"], &gz).ok(),
        format!("{}\n", top.hex())
    );
    h.run(&["load", "/nonexistent.tar"]).fails(3);
    let not_image = h.scratch("plain.tar");
    std::fs::write(&not_image, layer_tar(&[E::File("x", "y")])).unwrap();
    let e = h
        .run(&["load", not_image.to_str().unwrap()])
        .fails(4)
        .to_owned();
    assert!(e.contains("not an image archive"), "{e}");
}

#[test]
fn load_same_archive_from_two_processes_both_succeed() {
    if !require_root("load_same_archive_from_two_processes_both_succeed") {
        return;
    }
    let h = Home::new();
    let (ls, ids) = layers();
    let a = h.scratch("img.tar");
    docker_save(&a, &ls, &ids, "test:1");
    let spawn = || {
        h.cmd(&["load", a.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (p1, p2) = (spawn(), spawn());
    let top = format!("{}\n", Digest::chain(Some(&ids[0]), &ids[1]).hex());
    for p in [p1, p2] {
        let out = p.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), top);
    }
    assert_eq!(h.run(&["ls"]).ok().lines().count(), 2);
    h.run(&["check"]).ok();
}

#[test]
fn load_oci_layout_directory_prints_top() {
    if !require_root("load_oci_layout_directory_prints_top") {
        return;
    }
    let h = Home::new();
    let (ls, ids) = layers();
    let a = h.scratch("oci.tar");
    oci_archive(&a, &[ls[0].clone(), gzip(&ls[1])], &ids, &Oci::default());
    let dir = h.scratch("layout");
    std::fs::create_dir(&dir).unwrap();
    tar::Archive::new(std::fs::File::open(&a).unwrap())
        .unpack(&dir)
        .unwrap();
    let top = Digest::chain(Some(&ids[0]), &ids[1]);
    assert_eq!(
        h.run(&["load", dir.to_str().unwrap()]).ok(),
        format!("{}\n", top.hex())
    );
    // A create prints nothing, with or without --json.
    assert_eq!(
        h.run(&["--json", "create", "--rw", "--parent", top.hex(), "c"])
            .ok(),
        ""
    );
    assert_eq!(h.run(&["changes", "c"]).ok(), "");
}
