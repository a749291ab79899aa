//! Scans and prunes of constructed data roots: layers made by the store in Docker's format, a
//! layer database written as dockerd writes it, BuildKit databases written as bbolt files.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use strata::{Driver, LayerId, Options, StorageOpts};

use crate::bolt::testdb::{build, Shape};
use crate::daemon::Daemon;
use crate::scan::{scan_with, Reference, Report, Target};
use crate::Error;

/// A data root in /var/tmp (overlay-capable), with a store on its overlay2 home.
struct Root {
    dir: tempfile::TempDir,
    driver: Option<Driver>,
}

impl Root {
    fn new() -> Root {
        let dir = tempfile::Builder::new()
            .prefix("strata-dockerhome-")
            .tempdir_in("/var/tmp")
            .unwrap();
        for d in [
            "image/overlay2/layerdb/sha256",
            "image/overlay2/layerdb/mounts",
            "buildkit",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let driver = Driver::open(dir.path().join("overlay2"), Options::default()).unwrap();
        Root {
            dir,
            driver: Some(driver),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn home(&self) -> PathBuf {
        self.path().join("overlay2")
    }
    fn target(&self) -> Target {
        Target::new(self.path(), None)
    }
    fn d(&self) -> &Driver {
        self.driver.as_ref().unwrap()
    }
    fn layer(&self, id: &str, parent: Option<&str>) {
        let p = parent.map(|p| p.parse::<LayerId>().unwrap());
        self.d()
            .create(&id.parse().unwrap(), p.as_ref(), &StorageOpts::default())
            .unwrap();
        std::fs::write(self.home().join(id).join("diff/data"), vec![7u8; 64 * 1024]).unwrap();
    }
    fn rw_layer(&self, id: &str, parent: &str) {
        self.d()
            .create_read_write(
                &id.parse().unwrap(),
                Some(&parent.parse().unwrap()),
                &StorageOpts::default(),
            )
            .unwrap();
    }
    fn image_layer(&self, chain: &str, cache_id: &str) {
        let d = self
            .path()
            .join("image/overlay2/layerdb/sha256")
            .join(chain);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cache-id"), cache_id).unwrap();
        std::fs::write(d.join("diff"), format!("sha256:{chain}")).unwrap();
    }
    fn container(&self, cid: &str, mount_id: &str, init_id: Option<&str>) {
        let d = self.path().join("image/overlay2/layerdb/mounts").join(cid);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("mount-id"), mount_id).unwrap();
        if let Some(i) = init_id {
            std::fs::write(d.join("init-id"), i).unwrap();
        }
    }
    /// Drops the store and strata's state dir, leaving a home as Docker's driver leaves it.
    fn as_docker_left_it(&mut self) {
        self.driver = None;
        std::fs::remove_dir_all(self.home().join(".strata")).unwrap();
    }
}

fn ids<T>(v: &[T], f: impl Fn(&T) -> &str) -> Vec<String> {
    let mut out: Vec<String> = v.iter().map(|x| f(x).to_owned()).collect();
    out.sort();
    out
}

fn refs_of<'a>(r: &'a Report, id: &str) -> &'a [Reference] {
    &r.in_use
        .iter()
        .find(|u| u.id == id)
        .unwrap_or_else(|| panic!("{id} not in use: {r:#?}"))
        .by
}

const B1: &str = "p65kpesaetuj7lgyr5sabs52e";
const B2: &str = "qf8xo80ljldxj3p9csiw0mnfl";
const STALE: &str = "uscqmgwtwaq7q2d6dzt4fzl21";

/// base <- img2 (image layers); img2 <- ctr-init <- ctr (container); base <- B1 (BuildKit,
/// named in a split bucket); B2 <- B1? no: B2 is the parent of a BuildKit layer B1x named only
/// through its child; STALE named only in a freed page; orphan1 <- orphan2 (a leaked chain on
/// img2); a dangling link; a stray file.
fn populated() -> Root {
    let mut r = Root::new();
    r.layer("base", None);
    r.layer("img2", Some("base"));
    r.image_layer("c1", "base");
    r.image_layer("c2", "img2");
    r.layer("ctr-init", Some("img2"));
    r.rw_layer("ctr", "ctr-init");
    r.container("cid", "ctr", Some("ctr-init"));
    std::fs::create_dir_all(r.path().join("containers/cid")).unwrap();
    r.layer(B2, None);
    r.layer(B1, Some(B2));
    r.layer(STALE, Some("base"));
    r.layer("orphan1", Some("img2"));
    r.layer("orphan2", Some("orphan1"));
    std::fs::write(
        r.path().join("buildkit/snapshots.db"),
        build(
            &[
                (
                    b"v1",
                    vec![
                        (b"a-key", b"x"),
                        (b"committed", B1.as_bytes()),
                        (b"z-key", b"y"),
                    ],
                    Shape::Split,
                ),
                (b"meta", vec![(b"k", b"v")], Shape::Inline),
            ],
            &[STALE.as_bytes()],
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../gone/diff",
        r.home().join("l/DANGLINGDANGLINGDANGLING00"),
    )
    .unwrap();
    std::fs::write(r.home().join("stray-file"), b"?").unwrap();
    r.as_docker_left_it();
    r
}

#[test]
fn sorts_every_directory_into_in_use_orphan_or_kept() {
    let r = populated();
    let rep = scan_with(&r.target(), Vec::new()).unwrap();
    // Deepest first.
    assert_eq!(
        rep.orphans
            .iter()
            .map(|o| o.id.as_str())
            .collect::<Vec<_>>(),
        vec!["orphan2", "orphan1", STALE]
    );
    assert_eq!(
        ids(&rep.in_use, |u| &u.id),
        ids(&["base", "ctr", "ctr-init", "img2", B1, B2], |s| s)
    );
    assert!(refs_of(&rep, "base").contains(&Reference::ImageLayer {
        chain_id: "c1".into()
    }));
    assert!(refs_of(&rep, "ctr").contains(&Reference::Container {
        container: "cid".into()
    }));
    assert!(
        refs_of(&rep, "ctr-init").contains(&Reference::ContainerInit {
            container: "cid".into()
        })
    );
    assert!(refs_of(&rep, B1).contains(&Reference::Buildkit {
        file: "snapshots.db".into()
    }));
    // B2 is in use only as the lower of a BuildKit layer.
    assert_eq!(
        refs_of(&rep, B2),
        &[Reference::LowerOf { layer: B1.into() }]
    );
    // The orphans' sizes count their files; the total is their sum.
    for o in &rep.orphans {
        assert!(o.size >= 64 * 1024, "{o:?}");
        assert_eq!(o.links.len(), 1, "{o:?}");
    }
    assert_eq!(
        rep.reclaimable,
        rep.orphans.iter().map(|o| o.size).sum::<u64>()
    );
    assert_eq!(
        ids(&rep.dangling_links, |l| &l.name),
        vec!["DANGLINGDANGLINGDANGLING00"]
    );
    assert_eq!(ids(&rep.kept, |k| &k.id), vec!["stray-file"]);
    assert_eq!(rep.buildkit_files.len(), 1);
    assert_eq!(rep.buildkit_files[0].read_as, "bolt");
    assert!(rep.doubts.is_empty());
    assert_eq!(rep.remaining(), 4);
    // Reading changes nothing, and strata leaves no state in the Docker home.
    assert!(!r.home().join(".strata").exists());
}

#[test]
fn an_unreadable_bolt_file_is_searched_byte_for_byte() {
    let r = populated();
    // Damaged metas: the freed page's id is then found by the byte search, and kept in use.
    let p = r.path().join("buildkit/snapshots.db");
    let mut db = std::fs::read(&p).unwrap();
    db[16 + 56] ^= 0xff;
    db[4096 + 16 + 56] ^= 0xff;
    std::fs::write(&p, db).unwrap();
    let rep = scan_with(&r.target(), Vec::new()).unwrap();
    assert_eq!(rep.buildkit_files[0].read_as, "bytes");
    assert!(rep.buildkit_files[0]
        .note
        .as_deref()
        .unwrap()
        .contains("meta"));
    assert!(refs_of(&rep, STALE).contains(&Reference::Buildkit {
        file: "snapshots.db".into()
    }));
    assert_eq!(ids(&rep.orphans, |o| &o.id), vec!["orphan1", "orphan2"]);
}

#[test]
fn an_unreadable_layer_database_entry_keeps_everything() {
    let r = populated();
    std::fs::create_dir_all(r.path().join("image/overlay2/layerdb/sha256/broken")).unwrap();
    let rep = scan_with(&r.target(), Vec::new()).unwrap();
    assert!(rep.orphans.is_empty(), "{:?}", rep.orphans);
    assert_eq!(rep.doubts.len(), 1);
    assert!(rep.doubts[0].contains("sha256/broken/cache-id"));
    let kept = ids(&rep.kept, |k| &k.id);
    assert_eq!(
        kept,
        ids(&["orphan1", "orphan2", STALE, "stray-file"], |s| s)
    );
    assert!(rep
        .kept
        .iter()
        .any(|k| k.reason.contains("not fully readable")));
    // Nothing to prune then, but the dangling link (no layer at all) still goes.
    let pruned = crate::prune(&r.target()).unwrap();
    assert!(pruned.orphans.is_empty());
    assert!(r.home().join("orphan1/diff").is_dir());
    assert!(pruned.dangling_links.iter().all(|l| l.removed));
}

#[test]
fn a_write_set_counts_only_while_a_daemon_runs() {
    let r = populated();
    let ws = r.path().join("image/overlay2/layerdb/tmp/write-set-1");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("cache-id"), "orphan2").unwrap();
    let daemon = Daemon {
        pid: 1,
        how: "test".into(),
    };
    let live = scan_with(&r.target(), vec![daemon]).unwrap();
    assert!(
        refs_of(&live, "orphan2").contains(&Reference::BeingRegistered {
            write_set: "write-set-1".into()
        })
    );
    // Its parent is then in use as its lower.
    assert!(refs_of(&live, "orphan1").contains(&Reference::LowerOf {
        layer: "orphan2".into()
    }));
    let dead = scan_with(&r.target(), Vec::new()).unwrap();
    assert!(dead.orphans.iter().any(|o| o.id == "orphan2"));
}

#[test]
fn a_mount_without_its_container_is_stale_unless_a_daemon_runs() {
    let mut r = Root::new();
    r.layer("base", None);
    r.image_layer("c1", "base");
    r.rw_layer("ctr", "base");
    r.rw_layer("buildstep", "base");
    r.container("cid", "ctr", None);
    r.container("builder-mount", "buildstep", None);
    std::fs::create_dir_all(r.path().join("containers/cid")).unwrap();
    r.as_docker_left_it();
    let daemon = Daemon {
        pid: 1,
        how: "test".into(),
    };
    let live = scan_with(&r.target(), vec![daemon]).unwrap();
    assert!(live.stale_mounts.is_empty());
    assert!(
        refs_of(&live, "buildstep").contains(&Reference::MountWithoutContainer {
            mount: "builder-mount".into()
        })
    );
    let dead = scan_with(&r.target(), Vec::new()).unwrap();
    assert_eq!(ids(&dead.stale_mounts, |m| &m.name), vec!["builder-mount"]);
    assert_eq!(dead.stale_mounts[0].mount_id, "buildstep");
    assert_eq!(ids(&dead.orphans, |o| &o.id), vec!["buildstep"]);
    assert!(refs_of(&dead, "ctr").contains(&Reference::Container {
        container: "cid".into()
    }));
    assert_eq!(dead.remaining(), 2);
    // Without a containers/ directory nothing can be judged stale.
    std::fs::remove_dir_all(r.path().join("containers")).unwrap();
    let unsure = scan_with(&r.target(), Vec::new()).unwrap();
    assert!(unsure.stale_mounts.is_empty() && unsure.orphans.is_empty());
    std::fs::create_dir_all(r.path().join("containers/cid")).unwrap();
    if !strata_testkit::require_root("a_mount_without_its_container_is_stale") {
        return;
    }
    let pruned = crate::prune(&r.target()).unwrap();
    assert!(pruned.stale_mounts[0].removed, "{pruned:#?}");
    assert!(pruned.orphans[0].removed, "{pruned:#?}");
    assert!(!r
        .path()
        .join("image/overlay2/layerdb/mounts/builder-mount")
        .exists());
    assert!(r
        .path()
        .join("image/overlay2/layerdb/mounts/cid/mount-id")
        .exists());
    assert!(!r.home().join("buildstep").exists());
    assert!(r.home().join("ctr/diff").is_dir() && r.home().join("base/diff").is_dir());
    // Nothing of the entry is left in the database's tmp/ either.
    let tmp = r.path().join("image/overlay2/layerdb/tmp");
    assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
    assert_eq!(scan_with(&r.target(), Vec::new()).unwrap().remaining(), 0);
}

#[test]
fn not_a_docker_root_is_refused() {
    let r = Root::new();
    std::fs::remove_dir_all(r.path().join("image")).unwrap();
    match scan_with(&r.target(), Vec::new()) {
        Err(Error::NotADockerRoot { why, .. }) => assert!(why.contains("layerdb")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_mounted_layer_is_in_use() {
    if !strata_testkit::require_root("a_mounted_layer_is_in_use") {
        return;
    }
    let r = populated();
    let d = Driver::open(r.home(), Options::default()).unwrap();
    let id: LayerId = "orphan2".parse().unwrap();
    let merged = d.get(&id, "").unwrap();
    let rep = scan_with(&r.target(), Vec::new());
    d.put(&id).unwrap();
    let rep = rep.unwrap();
    assert!(refs_of(&rep, "orphan2").contains(&Reference::Mounted {
        mount_point: std::fs::canonicalize(r.home())
            .unwrap()
            .join("orphan2/merged")
    }));
    // Its lower is named by the mount's options (and is its lower).
    assert!(refs_of(&rep, "orphan1")
        .iter()
        .any(|x| matches!(x, Reference::Mounted { .. })));
    assert_eq!(ids(&rep.orphans, |o| &o.id), vec![STALE.to_owned()]);
    drop(merged);
}

#[test]
fn prune_removes_orphans_and_dangling_links_only() {
    if !strata_testkit::require_root("prune_removes_orphans_and_dangling_links_only") {
        return;
    }
    let r = populated();
    // A second link to an orphan, which dangles once the orphan is gone.
    std::os::unix::fs::symlink(
        "../orphan1/diff",
        r.home().join("l/SECONDLINKSECONDLINKSECOND"),
    )
    .unwrap();
    let before = scan_with(&r.target(), Vec::new()).unwrap();
    let rep = crate::prune(&r.target()).unwrap();
    assert!(
        rep.orphans.iter().all(|o| o.removed && o.error.is_none()),
        "{rep:#?}"
    );
    assert_eq!(
        ids(&rep.orphans, |o| &o.id),
        ids(&before.orphans, |o| &o.id)
    );
    for o in &rep.orphans {
        assert!(!o.path.exists());
        for l in &o.links {
            assert!(std::fs::symlink_metadata(r.home().join("l").join(l)).is_err());
        }
    }
    assert_eq!(
        ids(&rep.dangling_links, |l| &l.name),
        vec!["DANGLINGDANGLINGDANGLING00", "SECONDLINKSECONDLINKSECOND"]
    );
    assert!(rep.dangling_links.iter().all(|l| l.removed));
    assert_eq!(rep.remaining(), 0);
    // Everything in use is intact and mounts.
    for u in &before.in_use {
        assert!(r.home().join(&u.id).join("diff").is_dir(), "{}", u.id);
    }
    assert!(r.home().join("stray-file").exists());
    assert!(
        !r.home().join(".strata").exists(),
        "strata state left behind"
    );
    let again = scan_with(&r.target(), Vec::new()).unwrap();
    assert_eq!(again.remaining(), 0);
    assert_eq!(
        ids(&again.in_use, |u| &u.id),
        ids(&before.in_use, |u| &u.id)
    );
    let d = Driver::open(r.home(), Options::default()).unwrap();
    let ctr: LayerId = "ctr".parse().unwrap();
    let root = d.get(&ctr, "").unwrap();
    let data = std::fs::read(root.join("data"));
    d.put(&ctr).unwrap();
    assert_eq!(data.unwrap().len(), 64 * 1024);
}

#[test]
fn prune_is_refused_while_the_databases_are_locked() {
    let r = populated();
    let db = r.path().join("volumes/metadata.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    std::fs::write(&db, b"bolt").unwrap();
    let f = std::fs::File::open(&db).unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).unwrap();
    match crate::prune(&r.target()) {
        Err(Error::DaemonRunning { pid, how, .. }) => {
            assert_eq!(pid, std::process::id());
            assert!(how.contains("volumes/metadata.db"), "{how}");
        }
        other => panic!("{other:?}"),
    }
    assert!(r.home().join("orphan1/diff").is_dir());
    drop(f);
}
