//! A 128-layer chain, each layer prepared, mounted the way containerd mounts it, written and
//! committed; then a view of the top mounts (with containerd's chdir trick: its options do not
//! fit a page with absolute lower paths) and reads every layer's file.

use strata_testkit::require_root;

use crate::common::{ctrd_mount, Harness};

#[test]
fn chain_128_layers_mounts_through_containerds_legacy_path() {
    if !require_root("chain_128_layers_mounts_through_containerds_legacy_path") {
        return;
    }
    let mut h = Harness::new();
    let mnt = h.home.outside().join("mnt");
    let c = &mut h.client;
    let mut parent = String::new();
    let mut chdirs = 0;
    for i in 0..128 {
        let key = format!("default/{i}/active");
        let m = c.prepare(&key, &parent).unwrap();
        {
            let mounted = ctrd_mount(&m, &mnt);
            chdirs += usize::from(mounted.chdir.is_some());
            std::fs::write(mnt.join(format!("layer-{i:03}")), format!("{i}")).unwrap();
            std::fs::write(mnt.join("top"), format!("{i}")).unwrap();
            if i > 0 {
                // The layer below is visible through the mount.
                let below = std::fs::read_to_string(mnt.join(format!("layer-{:03}", i - 1)));
                assert_eq!(below.unwrap(), format!("{}", i - 1));
            }
        }
        let name = format!("default/{i}/committed");
        c.commit(&name, &key).unwrap();
        parent = name;
    }
    assert!(
        chdirs > 0,
        "no mount needed containerd's chdir trick; the test proves nothing"
    );
    let v = c.view("default/view", &parent).unwrap();
    let lowers = v[0]
        .options
        .iter()
        .find_map(|o| o.strip_prefix("lowerdir="))
        .unwrap()
        .split(':')
        .count();
    assert_eq!(lowers, 128);
    let page = strata_containerd::mounts::page_size();
    let total: usize = v[0].options.iter().map(|o| o.len() + 1).sum();
    assert!(
        total >= page - 512,
        "the view's options ({total} bytes) would not need the chdir"
    );
    {
        let mounted = ctrd_mount(&v, &mnt);
        assert_eq!(
            mounted.chdir.as_deref(),
            Some(h.home.home().join("l").to_str().unwrap())
        );
        for i in 0..128 {
            let got = std::fs::read_to_string(mnt.join(format!("layer-{i:03}"))).unwrap();
            assert_eq!(got, format!("{i}"));
        }
        assert_eq!(std::fs::read_to_string(mnt.join("top")).unwrap(), "127");
    }
    // A 129th layer still fits (containerd's own overlayfs stops at 128 for its tests).
    let m = c.prepare("default/129", &parent).unwrap();
    {
        let _m = ctrd_mount(&m, &mnt);
        assert_eq!(std::fs::read_to_string(mnt.join("top")).unwrap(), "127");
    }
    // Remove leaf first, down the chain.
    c.remove("default/129").unwrap();
    c.remove("default/view").unwrap();
    for i in (0..128).rev() {
        c.remove(&format!("default/{i}/committed")).unwrap();
    }
    assert!(h.home.driver.list().unwrap().is_empty());
}
