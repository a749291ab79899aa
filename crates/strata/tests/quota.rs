//! Project quotas on real filesystems: each test makes its own loop-mounted XFS (`-o pquota`)
//! or ext4 (`-O project,quota`, `-o prjquota`) image, opens a driver on a home there, and
//! writes through real overlay mounts.
//!
//! Needs root, a kernel with quota support, `mkfs.xfs` and `mkfs.ext4`. This machine's kernel
//! has no quota support, so `scripts/vm-test` runs this binary in a qemu guest on Debian's 6.1
//! kernel with `STRATA_REQUIRE_QUOTA=1`, under which a missing prerequisite FAILS the test
//! instead of skipping it. `unsupported_*` tests run anywhere with root and loop devices.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use strata::quota::QuotaControl;
use strata::{Driver, LayerId, Options, StorageOpts};
use strata_testkit::layer_id as id;

const MIB: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// XFS mounted with pquota.
    Xfs,
    /// ext4 with project,quota features mounted with prjquota.
    Ext4,
    /// ext4 without the project feature, mounted without prjquota.
    PlainExt4,
}

/// A loop-mounted filesystem image; unmounted and deleted on drop.
struct LoopFs {
    dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl LoopFs {
    fn home(&self) -> PathBuf {
        self.mnt.join("home")
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        // Unmount whatever a failed test left beneath the mount point, deepest first.
        let mut below: Vec<PathBuf> = strata_sys::mountinfo::read()
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|p| p.starts_with(&self.mnt))
            .collect();
        below.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for p in below {
            let _ = Command::new("umount").arg("-l").arg(&p).status();
        }
        let _ = std::fs::remove_file(self.dir.path().join("fs.img"));
    }
}

fn strict() -> bool {
    std::env::var("STRATA_REQUIRE_QUOTA").as_deref() == Ok("1")
}

/// Skips (returns None) or, under STRATA_REQUIRE_QUOTA=1, fails with `why`.
fn skip<T>(test: &str, why: &str) -> Option<T> {
    if strict() {
        panic!("{test}: {why} (STRATA_REQUIRE_QUOTA=1 forbids skipping)");
    }
    eprintln!("skipping {test}: {why} (scripts/vm-test runs it on a kernel with quotas)");
    None
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Makes and mounts an image of `kind`, or says why it cannot here.
fn loop_fs(test: &str, kind: Kind) -> Option<LoopFs> {
    // Root is the one prerequisite CI guarantees everywhere.
    if strict() && !rustix::process::geteuid().is_root() {
        panic!("{test} needs root");
    }
    if !strata_testkit::require_root(test) {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("strata-quota-")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    let img = dir.path().join("fs.img");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    // XFS refuses filesystems under 300 MiB; the image is sparse, so this costs little.
    let size = if kind == Kind::Xfs {
        320 * MIB
    } else {
        128 * MIB
    };
    File::create(&img).unwrap().set_len(size).unwrap();
    let (program, args, opts): (&str, &[&str], &str) = match kind {
        Kind::Xfs => ("mkfs.xfs", &["-q", "-f"], "loop,pquota"),
        Kind::Ext4 => (
            "mkfs.ext4",
            &["-q", "-F", "-I", "256", "-O", "project,quota"],
            "loop,prjquota",
        ),
        Kind::PlainExt4 => ("mkfs.ext4", &["-q", "-F"], "loop"),
    };
    let mut mkfs = Command::new(program);
    mkfs.args(args).arg(&img);
    if let Err(e) = run(&mut mkfs) {
        return skip(test, &format!("cannot make the {kind:?} image: {e}"));
    }
    let fs = LoopFs { dir, mnt };
    if let Err(e) = run(Command::new("mount")
        .args(["-o", opts])
        .arg(&img)
        .arg(&fs.mnt))
    {
        return skip(
            test,
            &format!("cannot mount {kind:?} with {opts} (kernel without quota support?): {e}"),
        );
    }
    Some(fs)
}

fn size_opts(size: u64) -> StorageOpts {
    StorageOpts {
        size: Some(size),
        inodes: None,
    }
}

fn is_quota_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(c) if c == rustix::io::Errno::DQUOT.raw_os_error()
            || c == rustix::io::Errno::NOSPC.raw_os_error()
    )
}

/// Writes `len` bytes of a pattern to `path`, syncing; returns the error that stopped it.
fn write_pattern(path: &Path, len: u64, seed: u8) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    let chunk: Vec<u8> = (0..MIB).map(|i| (i as u8).wrapping_add(seed)).collect();
    let mut left = len;
    while left > 0 {
        let n = left.min(MIB) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

fn check_pattern(path: &Path, len: u64, seed: u8) {
    let mut data = Vec::new();
    File::open(path).unwrap().read_to_end(&mut data).unwrap();
    assert_eq!(data.len() as u64, len, "{}", path.display());
    for (i, b) in data.iter().enumerate() {
        let want = ((i as u64 % MIB) as u8).wrapping_add(seed);
        assert_eq!(*b, want, "{} byte {i}", path.display());
    }
}

fn project_of(path: &Path) -> u32 {
    strata_sys::quota::get_fsxattr(File::open(path).unwrap())
        .unwrap()
        .projid
}

/// Runs `f` as the writer of a test on `kind`. The generic quota code that ext4 uses lets a
/// task with CAP_SYS_RESOURCE exceed hard limits (`ignore_hardlimit` in fs/quota/dquot.c), so
/// on ext4 a writer straight into a layer's `diff` (a parent-less layer, which `get` does not
/// mount) runs in a thread whose effective set lacks CAP_SYS_RESOURCE, as a container process's
/// does. Writes through an overlay need no such care: overlayfs drops CAP_SYS_RESOURCE from the
/// credentials it writes the upper with ("never override disk quota limits", ovl_fill_super),
/// and XFS enforces project limits on root too; those writers keep full root.
fn as_writer<T: Send>(kind: Kind, direct: bool, f: impl FnOnce() -> T + Send) -> T {
    if kind != Kind::Ext4 || !direct {
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            // Capabilities are per thread: this changes only the spawned one.
            let mut caps = rustix::thread::capabilities(None).unwrap();
            caps.effective
                .remove(rustix::thread::CapabilitySet::SYS_RESOURCE);
            rustix::thread::set_capabilities(None, caps).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

/// A 10 MiB layer `name` (over `parent`, or parent-less so that `get` is its `diff`): writes
/// below the limit land, a write past it fails with EDQUOT/ENOSPC, what was written before is
/// intact, and freeing space makes room again.
fn check_size_limit(d: &Driver, home: &Path, name: &str, parent: Option<&LayerId>, kind: Kind) {
    let l = id(name);
    d.create_read_write(&l, parent, &size_opts(10 * MIB))
        .unwrap();
    let layer_dir = home.join(name);
    let projid = project_of(&layer_dir);
    assert_ne!(projid, 0, "layer dir has no project id");
    assert_eq!(project_of(&layer_dir.join("diff")), projid);

    as_writer(kind, parent.is_none(), || {
        let root = d.get(&l, "").unwrap();
        write_pattern(&root.join("keep"), 4 * MIB, 7).unwrap();
        let err = write_pattern(&root.join("big"), 12 * MIB, 3).unwrap_err();
        assert!(
            is_quota_error(&err),
            "{name}: expected EDQUOT/ENOSPC, got {err}"
        );
        check_pattern(&root.join("keep"), 4 * MIB, 7);
        let meta = d.metadata(&l).unwrap();
        assert_eq!(meta["QuotaProjectId"], projid.to_string());
        assert_eq!(meta["QuotaSizeLimit"], (10 * MIB).to_string());
        let used: u64 = meta["QuotaSizeUsed"].parse().unwrap();
        assert!((4 * MIB..=10 * MIB).contains(&used), "{name}: used {used}");
        let inodes: u64 = meta["QuotaInodesUsed"].parse().unwrap();
        assert!(inodes >= 3, "{name}: inodes {inodes}"); // layer dir, diff, the files
                                                         // Deleting the big file makes room again.
        std::fs::remove_file(root.join("big")).unwrap();
        write_pattern(&root.join("again"), 2 * MIB, 1).unwrap();
        d.put(&l).unwrap();
    });
    // What was written is charged to the layer's project.
    assert_eq!(project_of(&layer_dir.join("diff").join("keep")), projid);
    check_pattern(&layer_dir.join("diff").join("keep"), 4 * MIB, 7);
}

/// Size limits on `kind`, for a parent-less layer and one mounted as an overlay; a sibling
/// without a size has no quota.
fn size_limit_holds(test: &str, kind: Kind) {
    let Some(fs) = loop_fs(test, kind) else {
        return;
    };
    let home = fs.home();
    let d = Driver::open(&home, Options::default()).unwrap();
    let base = id("base");
    d.create(&base, None, &StorageOpts::default()).unwrap();
    std::fs::write(home.join("base/diff/from-base"), b"base").unwrap();

    check_size_limit(&d, &home, "solo", None, kind);
    check_size_limit(&d, &home, "top", Some(&base), kind);

    let free = id("free");
    d.create_read_write(&free, Some(&base), &StorageOpts::default())
        .unwrap();
    assert_eq!(project_of(&home.join("free")), 0);
    assert!(!d.metadata(&free).unwrap().contains_key("QuotaProjectId"));
    as_writer(kind, false, || {
        let root = d.get(&free, "").unwrap();
        assert_eq!(std::fs::read(root.join("from-base")).unwrap(), b"base");
        write_pattern(&root.join("big"), 16 * MIB, 5).unwrap();
        d.put(&free).unwrap();
    });

    for l in ["solo", "top", "free", "base"] {
        d.remove(&id(l)).unwrap();
    }
}

#[test]
fn create_rw_size_on_xfs_limits_writes() {
    size_limit_holds("create_rw_size_on_xfs_limits_writes", Kind::Xfs);
}

#[test]
fn create_rw_size_on_ext4_limits_writes() {
    size_limit_holds("create_rw_size_on_ext4_limits_writes", Kind::Ext4);
}

/// An inode limit of 40: creating files stops with EDQUOT/ENOSPC before 40 more exist.
fn inode_limit_holds(test: &str, kind: Kind) {
    let Some(fs) = loop_fs(test, kind) else {
        return;
    };
    let d = Driver::open(fs.home(), Options::default()).unwrap();
    let top = id("top");
    let limit = 40;
    d.create_read_write(
        &top,
        None,
        &StorageOpts {
            size: None,
            inodes: Some(limit),
        },
    )
    .unwrap();
    let (root, made, err) = as_writer(kind, true, || {
        let root = d.get(&top, "").unwrap();
        let mut made = 0;
        let err = loop {
            match File::create(root.join(format!("f{made}"))) {
                Ok(_) => made += 1,
                Err(e) => break e,
            }
            assert!(
                made <= limit,
                "{made} files created past an inode limit of {limit}"
            );
        };
        (root, made, err)
    });
    assert!(is_quota_error(&err), "expected EDQUOT/ENOSPC, got {err}");
    assert!(made > 0, "no file could be created at all");
    let meta = d.metadata(&top).unwrap();
    assert_eq!(meta["QuotaInodeLimit"], limit.to_string());
    assert_eq!(meta["QuotaSizeLimit"], "0");
    let used: u64 = meta["QuotaInodesUsed"].parse().unwrap();
    assert!(used <= limit && used >= made, "used {used}, made {made}");
    // The files that were created are all there.
    for i in 0..made {
        assert!(root.join(format!("f{i}")).exists());
    }
    d.put(&top).unwrap();
    d.remove(&top).unwrap();
}

#[test]
fn create_rw_inodes_on_xfs_limits_files() {
    inode_limit_holds("create_rw_inodes_on_xfs_limits_files", Kind::Xfs);
}

#[test]
fn create_rw_inodes_on_ext4_limits_files() {
    inode_limit_holds("create_rw_inodes_on_ext4_limits_files", Kind::Ext4);
}

#[test]
fn create_read_only_with_size_is_refused() {
    let test = "create_read_only_with_size_is_refused";
    let Some(fs) = loop_fs(test, Kind::Xfs) else {
        return;
    };
    let d = Driver::open(fs.home(), Options::default()).unwrap();
    let err = d.create(&id("ro"), None, &size_opts(10 * MIB)).unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    assert!(err.to_string().contains("size"), "{err}");
    assert!(!d.exists(&id("ro")));
}

/// Ids are distinct across layers, drivers opened side by side (two processes' worth of
/// locks) and a reopen; a removed layer's id is released and its limits cleared.
fn ids_distinct_and_released(test: &str, kind: Kind) {
    let Some(fs) = loop_fs(test, kind) else {
        return;
    };
    let home = fs.home();
    let d1 = Driver::open(&home, Options::default()).unwrap();
    let d2 = Driver::open(&home, Options::default()).unwrap();
    std::thread::scope(|s| {
        for (n, d) in [(0, &d1), (1, &d2)] {
            s.spawn(move || {
                for i in 0..4 {
                    d.create_read_write(&id(&format!("l{n}-{i}")), None, &size_opts(MIB))
                        .unwrap();
                }
            });
        }
    });
    let mut ids = BTreeSet::new();
    for n in 0..2 {
        for i in 0..4 {
            let p = project_of(&home.join(format!("l{n}-{i}")));
            assert_ne!(p, 0);
            assert!(ids.insert(p), "project id {p} handed out twice");
        }
    }
    drop((d1, d2));

    // A restart: a fresh driver sees the records and never reuses a live id.
    let d = Driver::open(&home, Options::default()).unwrap();
    let q = QuotaControl::probe(&home).unwrap();
    let recorded: BTreeSet<u32> = q.records().unwrap().into_iter().map(|(_, p)| p).collect();
    assert_eq!(recorded, ids, "records and directories disagree");
    let gone = id("l0-1");
    let gone_id = q.project_id(&gone).unwrap().unwrap();
    assert_eq!(gone_id, project_of(&home.join("l0-1")));
    d.remove(&gone).unwrap();
    assert_eq!(q.project_id(&gone).unwrap(), None, "record not released");
    d.create_read_write(&id("after"), None, &size_opts(2 * MIB))
        .unwrap();
    let after = project_of(&home.join("after"));
    let live: BTreeSet<u32> = ids.iter().copied().filter(|p| *p != gone_id).collect();
    assert!(
        !live.contains(&after),
        "id {after} reused while its layer lives"
    );
    let u = q.usage(&id("after"), &home.join("after")).unwrap().unwrap();
    assert_eq!(u.project_id, after);
    assert_eq!(u.size_limit, 2 * MIB);

    // Removing every layer leaves no record behind.
    for l in d.list().unwrap() {
        d.remove(&l).unwrap();
    }
    assert_eq!(q.records().unwrap(), vec![], "records left behind");
}

/// Set in a child process of `create_rw_ids_from_two_processes_are_distinct`: `HOME_DIR:PREFIX`.
const CHILD_ENV: &str = "STRATA_QUOTA_TEST_CHILD";

#[test]
fn create_rw_ids_from_two_processes_are_distinct() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        // The child: open its own driver on the shared home and create sized layers.
        let (home, prefix) = spec.split_once(':').unwrap();
        let d = Driver::open(home, Options::default()).unwrap();
        for i in 0..6 {
            d.create_read_write(&id(&format!("{prefix}-{i}")), None, &size_opts(MIB))
                .unwrap();
        }
        return;
    }
    let test = "create_rw_ids_from_two_processes_are_distinct";
    let Some(fs) = loop_fs(test, Kind::Xfs) else {
        return;
    };
    let home = fs.home();
    drop(Driver::open(&home, Options::default()).unwrap());
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["p", "q"]
        .iter()
        .map(|prefix| {
            Command::new(&exe)
                .args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, format!("{}:{prefix}", home.display()))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a child process failed");
    }
    let mut ids = BTreeSet::new();
    for prefix in ["p", "q"] {
        for i in 0..6 {
            let p = project_of(&home.join(format!("{prefix}-{i}")));
            assert_ne!(p, 0);
            assert!(ids.insert(p), "project id {p} handed out twice");
        }
    }
    let q = QuotaControl::probe(&home).unwrap();
    assert_eq!(q.records().unwrap().len(), 12);
}

#[test]
fn create_rw_ids_on_xfs_are_distinct_and_released() {
    ids_distinct_and_released("create_rw_ids_on_xfs_are_distinct_and_released", Kind::Xfs);
}

#[test]
fn create_rw_ids_on_ext4_are_distinct_and_released() {
    ids_distinct_and_released(
        "create_rw_ids_on_ext4_are_distinct_and_released",
        Kind::Ext4,
    );
}

/// A home Docker's overlay2 wrote: a container layer whose directory moby gave the first project
/// id above the home's, with limits, and no strata record. strata reports its quota, never
/// hands out that id, and clears its limits on remove.
#[test]
fn metadata_moby_quota_layer_is_reported_skipped_and_released() {
    let test = "metadata_moby_quota_layer_is_reported_skipped_and_released";
    let Some(fs) = loop_fs(test, Kind::Xfs) else {
        return;
    };
    let home = fs.home();
    let d = Driver::open(&home, Options::default()).unwrap();
    let docker = id("docker-made");
    d.create_read_write(&docker, None, &StorageOpts::default())
        .unwrap();
    let dir = home.join("docker-made");
    let moby_id = project_of(&home) + 1;
    let home_fd = File::open(&home).unwrap();
    let target = strata_sys::quota::QuotaTarget::Fd(std::os::fd::AsFd::as_fd(&home_fd));
    strata_sys::quota::set_project(File::open(&dir).unwrap(), moby_id, true).unwrap();
    let limits = strata_sys::quota::FsDiskQuota {
        d_version: strata_sys::quota::FsDiskQuota::VERSION,
        d_flags: strata_sys::quota::FsDiskQuota::PROJ_QUOTA,
        d_fieldmask: strata_sys::quota::FsDiskQuota::BHARD | strata_sys::quota::FsDiskQuota::BSOFT,
        d_id: moby_id,
        d_blk_hardlimit: 5 * MIB / 512,
        d_blk_softlimit: 5 * MIB / 512,
        ..Default::default()
    };
    strata_sys::quota::xfs_set_limits(target, strata_sys::quota::PRJQUOTA, moby_id, &limits)
        .unwrap();

    let meta = d.metadata(&docker).unwrap();
    assert_eq!(meta["QuotaProjectId"], moby_id.to_string());
    assert_eq!(meta["QuotaSizeLimit"], (5 * MIB).to_string());

    d.create_read_write(&id("ours"), None, &size_opts(MIB))
        .unwrap();
    let ours = project_of(&home.join("ours"));
    assert_ne!(ours, moby_id, "strata reused the id of a Docker-made layer");

    d.remove(&docker).unwrap();
    let after = strata_sys::quota::xfs_get_quota(target, strata_sys::quota::PRJQUOTA, moby_id);
    if let Ok(q) = after {
        assert_eq!(
            q.d_blk_hardlimit, 0,
            "limits of the removed layer's id were kept"
        );
    }
    d.remove(&id("ours")).unwrap();
}

#[test]
fn open_default_size_on_quota_xfs_applies_to_every_rw_layer() {
    let test = "open_default_size_on_quota_xfs_applies_to_every_rw_layer";
    let Some(fs) = loop_fs(test, Kind::Xfs) else {
        return;
    };
    let opts = Options::parse(["overlay2.size=3M"]).unwrap();
    let d = Driver::open(fs.home(), opts).unwrap();
    d.create_read_write(&id("a"), None, &StorageOpts::default())
        .unwrap();
    d.create_read_write(&id("b"), None, &size_opts(5 * MIB))
        .unwrap();
    assert_eq!(
        d.metadata(&id("a")).unwrap()["QuotaSizeLimit"],
        (3 * MIB).to_string()
    );
    assert_eq!(
        d.metadata(&id("b")).unwrap()["QuotaSizeLimit"],
        (5 * MIB).to_string()
    );
    let status: std::collections::BTreeMap<_, _> = d.status().into_iter().collect();
    assert_eq!(
        status.get("Project Quota").map(String::as_str),
        Some("true")
    );
    assert!(
        status["Quota Device"].starts_with("/dev/loop"),
        "{status:?}"
    );
}

#[test]
fn unsupported_plain_ext4_size_error_says_what_and_how() {
    let test = "unsupported_plain_ext4_size_error_says_what_and_how";
    let Some(fs) = loop_fs(test, Kind::PlainExt4) else {
        return;
    };
    let why = QuotaControl::probe(&fs.mnt).unwrap_err().to_string();
    assert!(why.contains("ext4"), "{why}");
    assert!(why.contains("/dev/loop"), "{why}");
    // Either the kernel has quotas and the mount option is missing, or it has none at all.
    assert!(
        why.contains("prjquota") || why.contains("without quota support"),
        "{why}"
    );

    let err = Driver::open(fs.home(), Options::parse(["overlay2.size=10M"]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("ext4"), "{err}");

    // Without a size the driver works, and a per-layer size is refused with the reason.
    let d = Driver::open(fs.home(), Options::default()).unwrap();
    d.create_read_write(&id("plain"), None, &StorageOpts::default())
        .unwrap();
    let err = d
        .create_read_write(&id("sized"), None, &size_opts(10 * MIB))
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("ext4") && msg.contains("quota"), "{msg}");
    assert!(!d.exists(&id("sized")));
    assert!(d
        .status()
        .iter()
        .any(|(k, v)| k == "Project Quota" && v == "false"));
}

#[test]
fn unsupported_tmpfs_size_error_names_filesystem() {
    let test = "unsupported_tmpfs_size_error_names_filesystem";
    if !strata_testkit::require_root(test) {
        return;
    }
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let why = QuotaControl::probe(dir.path()).unwrap_err().to_string();
    assert!(why.contains("tmpfs"), "{why}");
    assert!(why.contains("pquota") && why.contains("prjquota"), "{why}");
}

/// A create killed after its quota was set leaves a record without a layer: `check` reports it
/// and `check --repair` releases it.
#[test]
fn check_repair_releases_orphan_quota_record() {
    let test = "check_repair_releases_orphan_quota_record";
    let Some(fs) = loop_fs(test, Kind::Xfs) else {
        return;
    };
    let home = fs.home();
    let d = Driver::open(&home, Options::default()).unwrap();
    d.create_read_write(&id("gone"), None, &size_opts(10 * MIB))
        .unwrap();
    let q = QuotaControl::probe(&home).unwrap();
    assert!(q.project_id(&id("gone")).unwrap().is_some());
    // The layer vanishes without `remove` (as if its create had been killed before the rename).
    let link = std::fs::read_to_string(home.join("gone/link")).unwrap();
    std::fs::remove_dir_all(home.join("gone")).unwrap();
    std::fs::remove_file(home.join("l").join(link)).unwrap();
    let report = d.check(false).unwrap();
    let kinds: Vec<&str> = report.problems.iter().map(|p| p.kind.as_str()).collect();
    assert_eq!(kinds, ["orphan-quota-record"]);
    assert!(!report.problems[0].repaired);
    assert!(
        q.project_id(&id("gone")).unwrap().is_some(),
        "check without repair releases nothing"
    );
    assert!(d.check(true).unwrap().all_repaired());
    assert!(d.check(false).unwrap().is_clean());
    assert!(q.project_id(&id("gone")).unwrap().is_none());
}

/// An apply into a quota-backed layer lands in place (the staging directory would not carry the
/// project id): one the quota stops leaves the layer incomplete, which `check --repair` removes
/// along with its quota record.
#[test]
fn apply_over_quota_leaves_layer_incomplete_and_repair_removes_it() {
    let test = "apply_over_quota_leaves_layer_incomplete_and_repair_removes_it";
    let Some(fs) = loop_fs(test, Kind::Xfs) else {
        return;
    };
    let d = Driver::open(fs.home(), Options::default()).unwrap();
    let l = id("limited");
    d.create_read_write(&l, None, &size_opts(2 * MIB)).unwrap();
    let big = "q".repeat(4 * MIB as usize);
    let tar = strata_testkit::images::files_tar(&[("small", "s"), ("big", &big)]);
    let e = d.apply_diff(&l, None, &tar[..]).unwrap_err();
    assert!(e.to_string().contains("limited"), "{e}");
    let report = d.check(false).unwrap();
    let kinds: Vec<&str> = report.problems.iter().map(|p| p.kind.as_str()).collect();
    assert_eq!(kinds, ["incomplete-layer"], "{report:?}");
    let e = d.get(&l, "").unwrap_err();
    assert!(matches!(e, strata::Error::Incomplete { .. }), "{e:?}");
    assert!(d.check(true).unwrap().all_repaired());
    assert!(d.check(false).unwrap().is_clean());
    assert!(!d.exists(&l));
    assert!(
        !d.layout().quota_record(&l).exists(),
        "the quota record went with the layer"
    );
}

/// A layer entry that is a symlink (a hostile or damaged home) is removed without following it:
/// its removal releases no quota, not even that of the directory it points to.
#[test]
fn remove_of_a_symlink_entry_releases_no_quota() {
    let test = "remove_of_a_symlink_entry_releases_no_quota";
    let Some(fs) = loop_fs(test, Kind::Xfs) else {
        return;
    };
    let home = fs.home();
    let d = Driver::open(&home, Options::default()).unwrap();
    d.create_read_write(&id("real"), None, &size_opts(10 * MIB))
        .unwrap();
    std::os::unix::fs::symlink(home.join("real"), home.join("evil")).unwrap();
    d.remove(&id("evil")).unwrap();
    assert!(std::fs::symlink_metadata(home.join("evil")).is_err());
    let q = QuotaControl::probe(&home).unwrap();
    let u = q.usage(&id("real"), &home.join("real")).unwrap().unwrap();
    assert_eq!(u.size_limit, 10 * MIB, "the real layer keeps its limit");
    assert!(q.project_id(&id("real")).unwrap().is_some());
    d.remove(&id("real")).unwrap();
    assert_eq!(q.records().unwrap(), vec![]);
}
