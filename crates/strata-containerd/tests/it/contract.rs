//! The snapshot API's contract, RPC by RPC, with the gRPC codes containerd acts on.

use strata_containerd::proto::snapshots::Kind;
use strata_testkit::require_root;
use tonic::Code;

use crate::common::{code, ctrd_mount, labels, tree, Harness};

#[test]
fn prepare_mount_write_commit_view_reads_the_tree() {
    if !require_root("prepare_mount_write_commit_view_reads_the_tree") {
        return;
    }
    let mut h = Harness::new();
    let mnt = h.home.outside().join("mnt");
    let root = h.root().to_owned();
    let c = &mut h.client;
    // A parent-less active snapshot is a read-write bind of its own directory.
    let m = c.prepare("default/1/base", "").unwrap();
    assert_eq!(m[0].r#type, "bind");
    assert_eq!(m[0].options, ["rw", "rbind"]);
    {
        let _m = ctrd_mount(&m, &mnt);
        std::fs::create_dir(mnt.join("etc")).unwrap();
        std::fs::write(mnt.join("etc/base"), "base").unwrap();
        std::fs::write(mnt.join("gone"), "x").unwrap();
    }
    assert_eq!(c.mounts("default/1/base").unwrap(), m);
    c.commit("default/2/base", "default/1/base").unwrap();
    assert_eq!(code(c.stat("default/1/base")), Code::NotFound);
    let i = c.stat("default/2/base").unwrap();
    assert_eq!(i.kind, Kind::Committed as i32);

    // An active snapshot on a parent is an overlay: index=off, upper and work, l/ lowers.
    let m = c.prepare("default/3/top", "default/2/base").unwrap();
    assert_eq!(m[0].r#type, "overlay");
    let o = &m[0].options;
    assert!(o.contains(&"index=off".to_string()), "{o:?}");
    assert!(o.iter().any(|x| x.starts_with("upperdir=")), "{o:?}");
    assert!(o.iter().any(|x| x.starts_with("workdir=")), "{o:?}");
    let lower = o.iter().find(|x| x.starts_with("lowerdir=")).unwrap();
    assert!(
        lower.starts_with(&format!("lowerdir={}/l/", root.display())),
        "{lower}"
    );
    {
        let _m = ctrd_mount(&m, &mnt);
        assert_eq!(
            std::fs::read_to_string(mnt.join("etc/base")).unwrap(),
            "base"
        );
        std::fs::write(mnt.join("etc/top"), "top").unwrap();
        std::fs::remove_file(mnt.join("gone")).unwrap();
    }
    c.commit("default/4/top", "default/3/top").unwrap();

    // A view of one parent is a read-only bind of it; of a chain, an overlay without upper.
    let v = c.view("default/5/v1", "default/2/base").unwrap();
    assert_eq!(v[0].r#type, "bind");
    assert_eq!(v[0].options, ["ro", "rbind"]);
    {
        let _m = ctrd_mount(&v, &mnt);
        assert!(
            std::fs::write(mnt.join("nope"), "x").is_err(),
            "a view is writable"
        );
        assert!(mnt.join("gone").exists());
    }
    let v = c.view("default/6/v2", "default/4/top").unwrap();
    assert_eq!(v[0].r#type, "overlay");
    assert!(!v[0].options.iter().any(|x| x.starts_with("upperdir=")));
    {
        let _m = ctrd_mount(&v, &mnt);
        let t = tree(&mnt);
        assert_eq!(t.get("etc/top").map(String::as_str), Some("file top"));
        assert_eq!(t.get("etc/base").map(String::as_str), Some("file base"));
        assert!(
            !t.contains_key("gone"),
            "the whiteout did not hide it: {t:?}"
        );
        assert!(std::fs::write(mnt.join("nope"), "x").is_err());
    }
    assert_eq!(c.stat("default/6/v2").unwrap().kind, Kind::View as i32);
    assert_eq!(c.stat("default/6/v2").unwrap().parent, "default/4/top");
    // Removing leaf first works; every key is free again at once.
    for k in [
        "default/6/v2",
        "default/5/v1",
        "default/4/top",
        "default/2/base",
    ] {
        c.remove(k).unwrap();
    }
    assert!(c.names(&[]).is_empty());
    c.prepare("default/2/base", "").unwrap();
    c.remove("default/2/base").unwrap();
    // Every layer went with its snapshot.
    assert!(h.home.driver.list().unwrap().is_empty());
}

#[test]
fn errors_have_the_codes_containerd_relies_on() {
    if !require_root("errors_have_the_codes_containerd_relies_on") {
        return;
    }
    let mut h = Harness::new();
    let c = &mut h.client;
    c.prepare("a", "").unwrap();
    assert_eq!(code(c.prepare("a", "")), Code::AlreadyExists);
    assert_eq!(code(c.view("a", "")), Code::AlreadyExists);
    assert_eq!(code(c.prepare("b", "missing")), Code::NotFound);
    assert_eq!(
        code(c.prepare("b", "a")),
        Code::InvalidArgument,
        "active parent"
    );
    assert_eq!(code(c.prepare("", "")), Code::InvalidArgument);
    assert_eq!(code(c.commit("", "a")), Code::InvalidArgument);
    assert_eq!(code(c.commit("n", "missing")), Code::NotFound);
    c.commit("base", "a").unwrap();
    assert_eq!(code(c.commit("base2", "base")), Code::FailedPrecondition);
    assert_eq!(code(c.mounts("base")), Code::FailedPrecondition);
    assert_eq!(code(c.mounts("missing")), Code::NotFound);
    c.view("v", "base").unwrap();
    assert_eq!(code(c.commit("v2", "v")), Code::FailedPrecondition, "view");
    assert_eq!(
        code(c.prepare("b", "v")),
        Code::InvalidArgument,
        "view parent"
    );
    c.prepare("x", "base").unwrap();
    assert_eq!(code(c.commit("base", "x")), Code::AlreadyExists);
    assert_eq!(code(c.commit("v", "x")), Code::AlreadyExists);
    assert_eq!(code(c.remove("base")), Code::FailedPrecondition, "children");
    assert_eq!(code(c.remove("missing")), Code::NotFound);
    assert_eq!(code(c.stat("missing")), Code::NotFound);
    assert_eq!(code(c.usage("missing")), Code::NotFound);
    assert_eq!(
        code(c.update("missing", labels(&[("a", "b")]), &[])),
        Code::NotFound
    );
    assert_eq!(
        code(c.update("base", labels(&[]), &["parent"])),
        Code::InvalidArgument
    );
    assert_eq!(code(c.list(&["name=="])), Code::InvalidArgument);
    let long = "x".repeat(4097);
    assert_eq!(
        code(c.prepare_labels("y", "", labels(&[("k", &long)]))),
        Code::InvalidArgument
    );
    assert_eq!(
        code(c.prepare_labels(
            "y",
            "",
            labels(&[(strata_containerd::LABEL_MAX_SIZE, "lots")])
        )),
        Code::InvalidArgument
    );
    // Nothing half made was left by the refusals.
    let mut names = c.names(&[]);
    names.sort();
    assert_eq!(names, ["base", "v", "x"]);
    for k in ["x", "v", "base"] {
        c.remove(k).unwrap();
    }
    assert!(h.home.driver.list().unwrap().is_empty());
}

#[test]
fn update_replaces_sets_and_deletes_labels_only() {
    if !require_root("update_replaces_sets_and_deletes_labels_only") {
        return;
    }
    let mut h = Harness::new();
    let c = &mut h.client;
    c.prepare_labels("a", "", labels(&[("keep", "1"), ("drop", "2")]))
        .unwrap();
    let before = c.stat("a").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    // labels.<k>: set one, an empty value deletes.
    let i = c
        .update(
            "a",
            labels(&[("new", "3"), ("drop", "")]),
            &["labels.new", "labels.drop"],
        )
        .unwrap();
    assert_eq!(i.labels, labels(&[("keep", "1"), ("new", "3")]));
    assert_eq!(i.created_at, before.created_at);
    assert_ne!(i.updated_at, before.updated_at);
    assert_eq!(i.kind, Kind::Active as i32);
    // labels: replace the map.
    let i = c
        .update("a", labels(&[("only", "x")]), &["labels"])
        .unwrap();
    assert_eq!(i.labels, labels(&[("only", "x")]));
    // No paths: replace everything mutable (the labels).
    let i = c.update("a", labels(&[("all", "y")]), &[]).unwrap();
    assert_eq!(i.labels, labels(&[("all", "y")]));
    assert_eq!(c.stat("a").unwrap().labels, labels(&[("all", "y")]));
    assert_eq!(
        code(c.update("a", labels(&[]), &["name"])),
        Code::InvalidArgument
    );
    // Commit replaces the labels with the commit's.
    c.commit_full("b", "a", labels(&[("c", "1")]), "").unwrap();
    assert_eq!(c.stat("b").unwrap().labels, labels(&[("c", "1")]));
    c.remove("b").unwrap();
}

#[test]
fn list_streams_all_and_filters_like_containerd() {
    if !require_root("list_streams_all_and_filters_like_containerd") {
        return;
    }
    let mut h = Harness::new();
    let c = &mut h.client;
    c.prepare_labels(
        "ns/1/base",
        "",
        labels(&[("containerd.io/snapshot.ref", "sha256:aa")]),
    )
    .unwrap();
    c.commit_full("ns/2/base", "ns/1/base", labels(&[("gc", "root")]), "")
        .unwrap();
    c.prepare_labels("ns/3/work", "ns/2/base", labels(&[("x", "1")]))
        .unwrap();
    c.view("ns/4/look", "ns/2/base").unwrap();
    // More than one List batch.
    for i in 0..150 {
        c.prepare(&format!("bulk/{i:03}"), "").unwrap();
    }
    let all = c.list(&[]).unwrap();
    assert_eq!(all.len(), 153);
    let ns = |v: Vec<String>| -> Vec<String> {
        v.into_iter().filter(|n| n.starts_with("ns/")).collect()
    };
    assert_eq!(ns(c.names(&["kind==committed"])), ["ns/2/base"]);
    assert_eq!(ns(c.names(&["kind==view"])), ["ns/4/look"]);
    assert_eq!(c.names(&["parent==ns/2/base"]), ["ns/3/work", "ns/4/look"]);
    assert_eq!(c.names(&["name==ns/3/work"]), ["ns/3/work"]);
    assert_eq!(c.names(&["labels.x"]), ["ns/3/work"]);
    assert_eq!(c.names(&["labels.x==1,kind==active"]), ["ns/3/work"]);
    assert!(c.names(&["labels.x==1,kind==view"]).is_empty());
    assert_eq!(
        c.names(&["labels.x==1", "kind==view"]),
        ["ns/3/work", "ns/4/look"]
    );
    assert_eq!(c.names(&[r#"labels."gc"==root"#]), ["ns/2/base"]);
    assert_eq!(c.names(&[r"name~=^ns/[34]/"]), ["ns/3/work", "ns/4/look"]);
    assert_eq!(ns(c.names(&["kind!=active"])), ["ns/2/base", "ns/4/look"]);
    // The remote-snapshot path: the ref label (kept from the Prepare) and the parent.
    assert_eq!(
        c.names(&[r#"labels."containerd.io/snapshot.ref"==sha256:aa,parent=="""#]),
        ["ns/2/base"]
    );
    // Only this snapshotter's snapshots: a layer made in the same home by another tool is
    // not listed.
    h.home
        .driver
        .create(&"foreign".parse().unwrap(), None, &Default::default())
        .unwrap();
    assert_eq!(c.list(&[]).unwrap().len(), 153);
    c.cleanup().unwrap();
    assert!(
        h.home.driver.exists(&"foreign".parse().unwrap()),
        "cleanup took a foreign layer"
    );
}

#[test]
fn usage_counts_active_upper_and_records_committed() {
    if !require_root("usage_counts_active_upper_and_records_committed") {
        return;
    }
    let mut h = Harness::new();
    let mnt = h.home.outside().join("mnt");
    let c = &mut h.client;
    c.prepare("base", "").unwrap();
    c.commit("b", "base").unwrap();
    let m = c.prepare("a", "b").unwrap();
    let empty = c.usage("a").unwrap();
    {
        let _m = ctrd_mount(&m, &mnt);
        std::fs::write(mnt.join("one"), vec![7u8; 1 << 20]).unwrap();
        for i in 0..10 {
            std::fs::write(mnt.join(format!("f{i}")), "x").unwrap();
        }
        rustix::fs::sync();
    }
    let u = c.usage("a").unwrap();
    assert!(u.size >= empty.size + (1 << 20), "{u:?} vs {empty:?}");
    assert_eq!(u.inodes, empty.inodes + 11);
    c.commit("done", "a").unwrap();
    let committed = c.usage("done").unwrap();
    assert_eq!(committed, u, "commit recorded what the active used");
    // The record answers, not a walk: the number stays even if the files change under it.
    let layer: strata::LayerId = h.snap.stat("done").unwrap().layer.parse().unwrap();
    let layer_diff = h.home.driver.layout().diff(&layer);
    std::fs::write(layer_diff.join("late"), vec![1u8; 1 << 16]).unwrap();
    assert_eq!(c.usage("done").unwrap(), committed);
}

#[test]
fn prepare_with_ref_of_a_committed_snapshot_is_already_exists() {
    if !require_root("prepare_with_ref_of_a_committed_snapshot_is_already_exists") {
        return;
    }
    let mut h = Harness::new();
    let c = &mut h.client;
    let refl = strata_containerd::LABEL_SNAPSHOT_REF;
    c.prepare_labels("ns/1/extract-1 sha256:b", "", labels(&[(refl, "sha256:b")]))
        .unwrap();
    c.commit("ns/2/sha256:b", "ns/1/extract-1 sha256:b")
        .unwrap();
    // The same layer again: containerd skips download and unpack.
    let again = c.prepare_labels("ns/3/extract-2 sha256:b", "", labels(&[(refl, "sha256:b")]));
    assert_eq!(code(again), Code::AlreadyExists);
    assert_eq!(code(c.stat("ns/3/extract-2 sha256:b")), Code::NotFound);
    // By name too.
    let by_name = c.prepare_labels("ns/4/x", "", labels(&[(refl, "ns/2/sha256:b")]));
    assert_eq!(code(by_name), Code::AlreadyExists);
    // The same chain id on another parent is another layer.
    c.prepare_labels(
        "ns/5/on-top",
        "ns/2/sha256:b",
        labels(&[(refl, "sha256:b")]),
    )
    .unwrap();
    c.remove("ns/5/on-top").unwrap();
    // Relabelled (Update): the layer is no longer known by that chain id.
    c.update("ns/2/sha256:b", labels(&[]), &[&format!("labels.{refl}")])
        .unwrap();
    c.prepare_labels("ns/6/x", "", labels(&[(refl, "sha256:b")]))
        .unwrap();
    c.remove("ns/6/x").unwrap();
    c.update("ns/2/sha256:b", labels(&[(refl, "sha256:b")]), &[])
        .unwrap();
    assert_eq!(
        code(c.prepare_labels("ns/7/x", "", labels(&[(refl, "sha256:b")]))),
        Code::AlreadyExists
    );
    c.remove("ns/2/sha256:b").unwrap();
    c.prepare_labels("ns/8/x", "", labels(&[(refl, "sha256:b")]))
        .unwrap();
}

#[test]
fn max_size_without_quota_support_is_a_clear_error() {
    if !require_root("max_size_without_quota_support_is_a_clear_error") {
        return;
    }
    let mut h = Harness::new();
    if h.home.driver.quota_support().is_ok() {
        eprintln!("this filesystem has quotas; tests/quota.rs covers it");
        return;
    }
    let c = &mut h.client;
    for l in [
        (strata_containerd::LABEL_MAX_SIZE, "10485760"),
        (strata_containerd::LABEL_STRATA_SIZE, "10M"),
    ] {
        let e = c.prepare_labels("q", "", labels(&[l])).unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
        assert!(e.message().contains("project quotas"), "{}", e.message());
    }
    assert!(c.names(&[]).is_empty());
    // A view ignores it (containerd's label is for active snapshots).
    c.prepare("b", "").unwrap();
    c.commit("bb", "b").unwrap();
    c.view("v", "bb").unwrap();
}

#[test]
fn cleanup_on_a_clean_root_keeps_everything() {
    if !require_root("cleanup_on_a_clean_root_keeps_everything") {
        return;
    }
    let mut h = Harness::new();
    let c = &mut h.client;
    c.prepare("a", "").unwrap();
    c.commit("b", "a").unwrap();
    c.prepare("c", "b").unwrap();
    c.cleanup().unwrap();
    assert_eq!(c.names(&[]), ["b", "c"]);
    assert!(h.home.driver.check(false).unwrap().is_clean());
}
