//! Loading docker-save and OCI archives into a fake store: plans, chain ids, reuse, digest
//! checks. No root needed; the real store is exercised by the CLI's tests.

// Test helpers panic on a broken setup; that is the failure report a test wants.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use strata::LayerId;
use strata_image::{Archive, Digest, LayerStore, NoProgress};
use strata_testkit::images::{self, gzip, image_config as config};

/// Per layer id: its parent and the names its applied tar held.
type Layers = BTreeMap<String, (Option<String>, Vec<String>)>;

/// A store that records layers and the file names each applied tar held.
#[derive(Default)]
struct FakeStore {
    layers: RefCell<Layers>,
    applies: RefCell<usize>,
    /// A home layout whose fill markers the fake uses (as the real store does).
    fills: Option<strata::layout::Layout>,
}

impl LayerStore for FakeStore {
    fn exists(&self, id: &LayerId) -> bool {
        self.layers.borrow().contains_key(id.as_str())
    }
    fn create(&self, id: &LayerId, parent: Option<&LayerId>) -> strata::Result<()> {
        if let Some(p) = parent {
            assert!(self.exists(p), "parent {p} missing");
        }
        self.layers
            .borrow_mut()
            .insert(id.to_string(), (parent.map(|p| p.to_string()), vec![]));
        Ok(())
    }
    fn apply_diff(
        &self,
        id: &LayerId,
        _: Option<&LayerId>,
        fill: Option<&strata::FillGuard>,
        tar: &mut dyn Read,
    ) -> strata::Result<u64> {
        *self.applies.borrow_mut() += 1;
        if self.fills.is_some() {
            assert_eq!(fill.map(|f| f.id()), Some(id), "applied under its marker");
        }
        // Like the real engine: stop at the end-of-archive blocks, leave the padding unread.
        let mut names = vec![];
        let mut size = 0;
        for e in tar::Archive::new(tar).entries().expect("a tar") {
            let e = e.expect("a tar entry");
            size += e.size();
            names.push(e.path().expect("a name").to_string_lossy().into_owned());
        }
        self.layers
            .borrow_mut()
            .get_mut(id.as_str())
            .expect("created first")
            .1 = names;
        Ok(size)
    }
    fn remove(&self, id: &LayerId) -> strata::Result<()> {
        self.layers.borrow_mut().remove(id.as_str());
        Ok(())
    }
    fn begin_fill(&self, id: &LayerId) -> strata::Result<Option<strata::FillGuard>> {
        self.fills
            .as_ref()
            .map(|l| strata::fill::begin(l, id))
            .transpose()
    }
}

fn layer_tar(files: &[(&str, &str)]) -> Vec<u8> {
    images::files_tar(files)
}

fn docker_save(path: &Path, layers: &[Vec<u8>], diff_ids: &[Digest]) {
    images::docker_save(path, layers, diff_ids, "demo:1");
}

/// An OCI layout of gzip layers whose index lists a foreign platform first.
fn oci_files(blobs: &[Vec<u8>], diff_ids: &[Digest]) -> Vec<(String, Vec<u8>)> {
    let how = images::Oci {
        tag: "demo:oci",
        layer_media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
        foreign_platform_first: true,
    };
    images::oci_files(blobs, diff_ids, &how)
}

fn two_layers() -> (Vec<Vec<u8>>, Vec<Digest>) {
    let l0 = layer_tar(&[("etc/hostname", "base\n"), ("gone", "x")]);
    let l1 = layer_tar(&[(".wh.gone", ""), ("added", "new\n")]);
    let ids = vec![Digest::of(&l0), Digest::of(&l1)];
    (vec![l0, l1], ids)
}

#[test]
fn load_docker_save_creates_layers_named_by_chain_id() {
    let dir = tempfile::tempdir().unwrap();
    let (layers, ids) = two_layers();
    let path = dir.path().join("img.tar");
    docker_save(&path, &layers, &ids);
    let store = FakeStore::default();
    let archive = Archive::open(&path, dir.path()).unwrap();
    assert_eq!(archive.images()[0].tags, vec!["demo:1"]);
    let images = archive.load(&store, &mut NoProgress).unwrap();
    let top = Digest::chain(Some(&ids[0]), &ids[1]);
    assert_eq!(images[0].top().unwrap().as_str(), top.hex());
    let got = store.layers.borrow();
    assert_eq!(
        got[ids[0].hex()],
        (None, vec!["etc/hostname".to_string(), "gone".to_string()])
    );
    assert_eq!(got[top.hex()].0.as_deref(), Some(ids[0].hex()));
    assert!(images[0].layers.iter().all(|l| !l.reused));
}

#[test]
fn load_second_time_reuses_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let (layers, ids) = two_layers();
    let path = dir.path().join("img.tar");
    docker_save(&path, &layers, &ids);
    let store = FakeStore::default();
    let archive = Archive::open(&path, dir.path()).unwrap();
    archive.load(&store, &mut NoProgress).unwrap();
    let again = archive.load(&store, &mut NoProgress).unwrap();
    assert!(again[0].layers.iter().all(|l| l.reused));
    assert_eq!(*store.applies.borrow(), 2);
}

#[test]
fn load_wrong_diff_id_removes_layer_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (layers, mut ids) = two_layers();
    ids[1] = Digest::of(b"something else");
    let path = dir.path().join("img.tar");
    docker_save(&path, &layers, &ids);
    let store = FakeStore::default();
    let err = Archive::open(&path, dir.path())
        .unwrap()
        .load(&store, &mut NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("diff id mismatch"), "{err}");
    let got = store.layers.borrow();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        vec![ids[0].hex()],
        "only the good base stays"
    );
}

#[test]
fn load_oci_archive_gzip_layers_verified_and_platform_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let (layers, ids) = two_layers();
    let blobs: Vec<Vec<u8>> = layers.iter().map(|l| gzip(l)).collect();
    let path = dir.path().join("oci.tar");
    images::write_tar(&path, &oci_files(&blobs, &ids));
    let store = FakeStore::default();
    let archive = Archive::open(&path, dir.path()).unwrap();
    assert_eq!(
        archive.images().len(),
        1,
        "the foreign-platform entry is skipped"
    );
    assert_eq!(archive.images()[0].tags, vec!["demo:oci"]);
    let images = archive.load(&store, &mut NoProgress).unwrap();
    assert_eq!(
        images[0].layers[1].compression,
        Some(strata_image::Compression::Gzip)
    );
    assert_eq!(
        images[0].top().unwrap().as_str(),
        Digest::chain(Some(&ids[0]), &ids[1]).hex()
    );
}

#[test]
fn load_oci_layout_directory_with_zstd_layer() {
    let dir = tempfile::tempdir().unwrap();
    let (layers, ids) = two_layers();
    let blobs = vec![layers[0].clone(), images::zstd(&layers[1])];
    let root = dir.path().join("layout");
    for (name, data) in oci_files(&blobs, &ids) {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    let store = FakeStore::default();
    let images = Archive::open(&root, dir.path())
        .unwrap()
        .load(&store, &mut NoProgress)
        .unwrap();
    assert_eq!(
        images[0].layers[1].compression,
        Some(strata_image::Compression::Zstd)
    );
    assert_eq!(store.layers.borrow().len(), 2);
}

#[test]
fn load_oci_corrupt_blob_digest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (layers, ids) = two_layers();
    let mut files = oci_files(&layers, &ids);
    // Same diff id, but the blob is stored gzip-compressed under the plain tar's digest.
    let l1_name = format!("blobs/sha256/{}", ids[1].hex());
    for f in files.iter_mut().filter(|f| f.0 == l1_name) {
        f.1 = gzip(&layers[1]);
    }
    let path = dir.path().join("oci.tar");
    images::write_tar(&path, &files);
    let store = FakeStore::default();
    let err = Archive::open(&path, dir.path())
        .unwrap()
        .load(&store, &mut NoProgress)
        .unwrap_err();
    assert!(err.to_string().contains("blob digest mismatch"), "{err}");
    assert_eq!(store.layers.borrow().len(), 1);
}

#[test]
fn open_plain_tar_without_metadata_is_not_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.tar");
    images::write_tar(&path, &[("hello".into(), b"hi".to_vec())]);
    let err = Archive::open(&path, dir.path()).unwrap_err();
    assert!(err.to_string().contains("not an image archive"), "{err}");
}

#[test]
fn open_from_reader_gzip_docker_save_is_spooled() {
    let dir = tempfile::tempdir().unwrap();
    let (layers, ids) = two_layers();
    let path = dir.path().join("img.tar");
    docker_save(&path, &layers, &ids);
    let gz = gzip(&std::fs::read(&path).unwrap());
    let archive = Archive::from_reader("-", &gz[..], dir.path()).unwrap();
    let store = FakeStore::default();
    archive.load(&store, &mut NoProgress).unwrap();
    assert_eq!(store.layers.borrow().len(), 2);
}

#[test]
fn load_layer_left_unfinished_by_dead_loader_is_redone() {
    let dir = tempfile::tempdir().unwrap();
    let (layers, ids) = two_layers();
    let path = dir.path().join("img.tar");
    docker_save(&path, &layers, &ids);
    let home = strata::layout::Layout::new(dir.path().join("home"));
    for d in [home.locks(), home.staging(), home.incomplete_dir()] {
        std::fs::create_dir_all(d).unwrap();
    }
    let markers = || std::fs::read_dir(home.incomplete_dir()).unwrap().count();
    let store = FakeStore {
        fills: Some(home.clone()),
        ..FakeStore::default()
    };
    let archive = Archive::open(&path, dir.path()).unwrap();
    archive.load(&store, &mut NoProgress).unwrap();
    assert_eq!(markers(), 0, "markers are removed");
    // A loader died while filling the top layer: its marker is on disk, nobody holds it, and
    // the layer it left is empty.
    let top = Digest::chain(Some(&ids[0]), &ids[1]);
    let top_id: LayerId = top.hex().parse().unwrap();
    drop(strata::fill::begin(&home, &top_id).unwrap());
    store
        .layers
        .borrow_mut()
        .get_mut(top.hex())
        .unwrap()
        .1
        .clear();
    let again = archive.load(&store, &mut NoProgress).unwrap();
    assert!(again[0].layers[0].reused);
    assert!(
        !again[0].layers[1].reused,
        "the unfinished layer is loaded again"
    );
    assert_eq!(*store.applies.borrow(), 3);
    assert_eq!(
        store.layers.borrow()[top.hex()].1,
        vec![".wh.gone", "added"]
    );
    assert_eq!(markers(), 0);
    assert_eq!(
        std::fs::read_dir(home.staging()).unwrap().count(),
        0,
        "no marker staging file is left"
    );
}

#[test]
fn open_manifest_naming_paths_outside_archive_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "do not read").unwrap();
    let (layers, ids) = two_layers();
    let cfg = config(&ids);
    let manifest =
        serde_json::json!([{"Config": "c.json", "Layers": ["../secret", "/etc/passwd"]}]);
    let path = dir.path().join("evil.tar");
    images::write_tar(
        &path,
        &[
            ("c.json".into(), cfg),
            (
                "manifest.json".into(),
                serde_json::to_vec(&manifest).unwrap(),
            ),
            ("x".into(), layers[0].clone()),
        ],
    );
    let store = FakeStore::default();
    let err = Archive::open(&path, dir.path())
        .unwrap()
        .load(&store, &mut NoProgress)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("\"../secret\" is not in the archive"),
        "{err}"
    );
    assert!(store.layers.borrow().is_empty());
}

#[test]
fn open_oci_digest_with_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": "sha256:../../../../etc/passwd", "size": 1}]});
    let path = dir.path().join("evil.tar");
    images::write_tar(
        &path,
        &[
            ("oci-layout".into(), b"{}".to_vec()),
            ("index.json".into(), serde_json::to_vec(&index).unwrap()),
        ],
    );
    let err = Archive::open(&path, dir.path()).unwrap_err();
    assert!(err.to_string().contains("bad digest"), "{err}");
}
