//! Docker's graphdriver conformance cases through the test kit.

use strata_testkit::{conformance, require_root, TempHome};

#[test]
fn conformance_create_empty_mounts_empty_root_dir() {
    if !require_root("conformance_create_empty") {
        return;
    }
    conformance::create_empty(&TempHome::new().driver);
}

#[test]
fn conformance_create_base_keeps_modes_and_owners() {
    if !require_root("conformance_create_base") {
        return;
    }
    conformance::create_base(&TempHome::new().driver);
}

#[test]
fn conformance_snapshot_sees_base() {
    if !require_root("conformance_snapshot") {
        return;
    }
    conformance::create_snapshot(&TempHome::new().driver);
}

#[test]
fn conformance_deep_layer_read_128() {
    if !require_root("conformance_deep_layer_read_128") {
        return;
    }
    conformance::deep_layer_read(&TempHome::new().driver, 128);
}

#[test]
fn conformance_deep_layer_read_500_with_new_mount_api() {
    if !require_root("conformance_deep_layer_read_500") {
        return;
    }
    let h = TempHome::new();
    if !h.driver.probes().new_mount_api {
        // The legacy path's limit is checked by `create_chain_beyond_limit_is_refused`.
        eprintln!("kernel lacks lowerdir+: 500-layer chains are refused at create time here");
        return;
    }
    conformance::deep_layer_read(&h.driver, 500);
}

#[test]
fn conformance_list_layers_exactly_created() {
    if !require_root("conformance_list_layers") {
        return;
    }
    conformance::list_layers(&TempHome::new().driver);
}

fn legacy_home() -> TempHome {
    TempHome::with_options(strata::Options::parse(["strata.mount_api=legacy"]).unwrap())
}

#[test]
fn conformance_legacy_mount_snapshot_sees_base() {
    if !require_root("conformance_legacy_mount_snapshot") {
        return;
    }
    let h = legacy_home();
    assert!(!h.driver.probes().new_mount_api);
    conformance::create_snapshot(&h.driver);
}

#[test]
fn conformance_legacy_mount_deep_layer_read_128_uses_relative_paths() {
    if !require_root("conformance_legacy_mount_deep_layer_read_128") {
        return;
    }
    let h = legacy_home();
    conformance::deep_layer_read(&h.driver, 128);
}
