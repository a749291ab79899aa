//! containerd's `rebase` capability (containerd 2.2's parallel unpack): layers prepared without
//! a parent, unpacked side by side, then committed with `parent` set, give the same committed
//! chain as the sequential unpack on parents.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use strata_testkit::require_root;
use tonic::Code;

use crate::common::{code, ctrd_mount, labels, tree, Harness};

fn mode(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// Layer 1: a base tree (modes set explicitly: the umask differs between host and guest).
fn layer1(root: &Path) {
    std::fs::create_dir_all(root.join("etc/conf.d")).unwrap();
    mode(&root.join("etc"), 0o755);
    mode(&root.join("etc/conf.d"), 0o750);
    std::fs::write(root.join("etc/conf.d/a"), "a").unwrap();
    std::fs::write(root.join("etc/conf.d/b"), "b").unwrap();
    std::fs::write(root.join("etc/keep"), "1").unwrap();
    std::fs::write(root.join("old"), "old").unwrap();
    std::os::unix::fs::symlink("etc/keep", root.join("link")).unwrap();
}

/// Layer 2 in the overlay's on-disk form, as containerd's applier writes it into an upper
/// directory: `old` whited out (a 0/0 character device), `etc/conf.d` opaque and refilled,
/// `etc/keep` changed.
fn layer2_upper(upper: &Path) {
    std::fs::create_dir_all(upper.join("etc/conf.d")).unwrap();
    mode(&upper.join("etc"), 0o755);
    mode(&upper.join("etc/conf.d"), 0o700);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        upper.join("old"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    rustix::fs::setxattr(
        upper.join("etc/conf.d"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    std::fs::write(upper.join("etc/conf.d/c"), "c").unwrap();
    std::fs::write(upper.join("etc/keep"), "2").unwrap();
}

/// The same change made through an overlay mount.
fn layer2_through_mount(root: &Path) {
    std::fs::remove_file(root.join("old")).unwrap();
    std::fs::remove_dir_all(root.join("etc/conf.d")).unwrap();
    std::fs::create_dir(root.join("etc/conf.d")).unwrap();
    mode(&root.join("etc/conf.d"), 0o700);
    std::fs::write(root.join("etc/conf.d/c"), "c").unwrap();
    std::fs::write(root.join("etc/keep"), "2").unwrap();
}

fn view_tree(
    h: &mut Harness,
    key: &str,
    parent: &str,
) -> std::collections::BTreeMap<String, String> {
    let mnt = h.home.outside().join("mnt");
    let v = h.client.view(key, parent).unwrap();
    let t = {
        let _m = ctrd_mount(&v, &mnt);
        tree(&mnt)
    };
    h.client.remove(key).unwrap();
    t
}

#[test]
fn rebase_parallel_unpack_equals_sequential_chain() {
    if !require_root("rebase_parallel_unpack_equals_sequential_chain") {
        return;
    }
    let mut h = Harness::new();
    let mnt = h.home.outside().join("mnt");

    // Sequential: layer 2 prepared on layer 1.
    let m = h.client.prepare("seq/1", "").unwrap();
    {
        let _m = ctrd_mount(&m, &mnt);
        layer1(&mnt);
    }
    h.client.commit("seq/L1", "seq/1").unwrap();
    let m = h.client.prepare("seq/2", "seq/L1").unwrap();
    {
        let _m = ctrd_mount(&m, &mnt);
        layer2_through_mount(&mnt);
    }
    h.client.commit("seq/L2", "seq/2").unwrap();

    // Parallel: both prepared without parents (binds of their own directories) and unpacked
    // side by side, then committed bottom up with the parent named at commit.
    let m1 = h.client.prepare("par/1", "").unwrap();
    let m2 = h.client.prepare("par/2", "").unwrap();
    assert_eq!(m2[0].r#type, "bind");
    {
        let _a = ctrd_mount(&m1, &mnt);
        layer1(&mnt);
    }
    {
        let _b = ctrd_mount(&m2, &mnt);
        layer2_upper(&mnt);
    }
    h.client.commit("par/L1", "par/1").unwrap();
    // A parent that is not committed, or missing, is refused and leaves the active as it was.
    assert_eq!(
        code(
            h.client
                .commit_full("par/L2", "par/2", labels(&[]), "par/missing")
        ),
        Code::NotFound
    );
    h.client.prepare("par/other", "").unwrap();
    assert_eq!(
        code(
            h.client
                .commit_full("par/L2", "par/2", labels(&[]), "par/other")
        ),
        Code::InvalidArgument
    );
    assert_eq!(h.client.mounts("par/2").unwrap()[0].r#type, "bind");
    h.client
        .commit_full("par/L2", "par/2", labels(&[]), "par/L1")
        .unwrap();
    let i = h.client.stat("par/L2").unwrap();
    assert_eq!(i.parent, "par/L1");
    // The committed layer cannot be removed below its new child... and its chain is real:
    assert_eq!(code(h.client.remove("par/L1")), Code::FailedPrecondition);

    let seq = view_tree(&mut h, "seq/view", "seq/L2");
    let par = view_tree(&mut h, "par/view", "par/L2");
    assert_eq!(seq, par);
    assert!(!par.contains_key("old"), "{par:?}");
    assert!(
        !par.contains_key("etc/conf.d/a"),
        "opaque directory leaked: {par:?}"
    );
    assert_eq!(par.get("etc/keep").map(String::as_str), Some("file 2"));
    // An active snapshot on top of the rebased one sees the same.
    let m = h.client.prepare("par/3", "par/L2").unwrap();
    {
        let _m = ctrd_mount(&m, &mnt);
        assert_eq!(tree(&mnt), seq);
    }
    // An active that already has another parent cannot be rebased.
    assert_eq!(
        code(
            h.client
                .commit_full("par/x", "par/3", labels(&[]), "seq/L1")
        ),
        Code::FailedPrecondition
    );
    // Committing with the parent it already has is a plain commit.
    h.client
        .commit_full("par/L3", "par/3", labels(&[]), "par/L2")
        .unwrap();
    assert!(h.home.driver.check(false).unwrap().is_clean());
}
