//! Property tests over random layer stacks built through real overlay mounts: the fast
//! (upper-only) changes equal the whole-tree comparison, and diff → apply onto a fresh child
//! of the parent reproduces the same merged view. Seeds are fixed and printed on failure;
//! `STRATA_PROPERTY_CASES=N` runs more seeds, `STRATA_PROPERTY_ONLY=SEED` one deep-stack seed
//! with its layers copied to `$TMPDIR/strata-property-layers` for inspection.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata_archive::{
    apply, changes, changes_naive, diff_size, export, export_changes, ApplyOptions, Change,
    ExportOptions, WhiteoutFormat,
};

use crate::common::{assert_same_tree, lines, require_root, snapshot, Mount};

fn entries(root: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut dirs = vec![PathBuf::new()];
    let mut files = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(root.join(&d)) else {
            continue;
        };
        let mut names: Vec<_> = rd.map(|e| e.unwrap().file_name()).collect();
        names.sort();
        for n in names {
            let rel = d.join(n);
            let md = std::fs::symlink_metadata(root.join(&rel)).unwrap();
            if md.is_dir() {
                dirs.push(rel.clone());
                stack.push(rel);
            } else {
                files.push(rel);
            }
        }
    }
    (dirs, files)
}

fn random_ops(rng: &mut StdRng, root: &Path, n: usize) {
    for _ in 0..n {
        let (dirs, files) = entries(root);
        let dir = root.join(&dirs[rng.gen_range(0..dirs.len())]);
        let file = (!files.is_empty()).then(|| root.join(&files[rng.gen_range(0..files.len())]));
        let name = format!(
            "{}{}",
            ["f", "d", "x"][rng.gen_range(0..3)],
            rng.gen_range(0..6)
        );
        let len = rng.gen_range(0..3000);
        let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        match rng.gen_range(0..13) {
            0 | 1 => {
                let _ = std::fs::write(dir.join(&name), &data);
            }
            2 => {
                if let Some(f) = &file {
                    if std::fs::symlink_metadata(f).unwrap().is_file() {
                        use std::io::Write;
                        let mut h = std::fs::OpenOptions::new().append(true).open(f).unwrap();
                        h.write_all(&data[..len.min(100)]).unwrap();
                        h.write_all(b"+").unwrap();
                    }
                }
            }
            3 => {
                if let Some(f) = &file {
                    std::fs::remove_file(f).unwrap();
                }
            }
            4 => {
                if dir != root {
                    std::fs::remove_dir_all(&dir).unwrap();
                }
            }
            5 => {
                if dir != root {
                    // Remove and re-create: overlay makes it opaque.
                    std::fs::remove_dir_all(&dir).unwrap();
                    std::fs::create_dir(&dir).unwrap();
                    let _ = std::fs::write(dir.join(&name), &data);
                }
            }
            6 => {
                let _ = std::fs::create_dir(dir.join(&name));
            }
            7 => {
                if let Some(f) = &file {
                    let _ = std::fs::rename(f, dir.join(&name));
                }
            }
            8 => {
                if let Some(f) = &file {
                    if std::fs::symlink_metadata(f).unwrap().is_file() {
                        let _ = std::fs::hard_link(f, dir.join(&name));
                    }
                }
            }
            9 => {
                let target = file.as_deref().unwrap_or(&dir);
                if !std::fs::symlink_metadata(target)
                    .unwrap()
                    .file_type()
                    .is_symlink()
                {
                    let mode = [0o644, 0o600, 0o755, 0o4755, 0o1777, 0o2750][rng.gen_range(0..6)];
                    std::fs::set_permissions(
                        target,
                        std::os::unix::fs::PermissionsExt::from_mode(mode),
                    )
                    .unwrap();
                }
            }
            10 => {
                let target = file.as_deref().unwrap_or(&dir);
                let id = [0, 1000, 1001][rng.gen_range(0..3)];
                rustix::fs::chownat(
                    rustix::fs::CWD,
                    target,
                    Some(rustix::fs::Uid::from_raw(id)),
                    Some(rustix::fs::Gid::from_raw(id)),
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )
                .unwrap();
            }
            11 => {
                let _ = std::os::unix::fs::symlink(
                    format!("../t{}", rng.gen_range(0..4)),
                    dir.join(&name),
                );
            }
            _ => {
                if let Some(f) = &file {
                    if std::fs::symlink_metadata(f).unwrap().is_file() {
                        let v = format!("v{}", rng.gen_range(0..3));
                        rustix::fs::lsetxattr(
                            f,
                            "user.p",
                            v.as_bytes(),
                            rustix::fs::XattrFlags::empty(),
                        )
                        .unwrap();
                    }
                }
            }
        }
    }
}

/// Seeds per test: 24, or `STRATA_PROPERTY_CASES` for a longer hunt.
fn cases() -> u64 {
    std::env::var("STRATA_PROPERTY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

struct Case {
    dir: tempfile::TempDir,
    layers: Vec<PathBuf>,
}

impl Case {
    fn path(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }
    fn view(&self, name: &str, layers: &[PathBuf]) -> Mount {
        let l: Vec<&Path> = layers.iter().map(PathBuf::as_path).collect();
        Mount::overlay(&self.path(name), &l, None)
    }
}

fn build(seed: u64, layers: usize) -> Case {
    let mut rng = StdRng::seed_from_u64(seed);
    let c = Case {
        dir: tempfile::tempdir().unwrap(),
        layers: Vec::new(),
    };
    let mut c = c;
    let base = c.path("l0");
    std::fs::create_dir(&base).unwrap();
    for d in ["d0", "d0/d1", "d0/d1/d2", "d3", "d3/d4"] {
        std::fs::create_dir(base.join(d)).unwrap();
    }
    random_ops(&mut rng, &base, 40);
    c.layers.push(base);
    for i in 1..layers {
        let up = c.path(&format!("l{i}"));
        let work = c.path(&format!("w{i}"));
        std::fs::create_dir(&up).unwrap();
        std::fs::create_dir(&work).unwrap();
        let lowers: Vec<&Path> = c.layers.iter().rev().map(PathBuf::as_path).collect();
        let m = Mount::overlay(&c.path("m"), &lowers, Some((&up, &work)));
        random_ops(&mut rng, &m.path, 25);
        drop(m);
        c.layers.push(up);
    }
    c
}

fn check(seed: u64, layers: usize) {
    let c = build(seed, layers);
    if std::env::var("STRATA_PROPERTY_ONLY").is_ok() {
        let keep = std::env::temp_dir().join("strata-property-layers");
        let _ = std::fs::remove_dir_all(&keep);
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(c.dir.path())
            .arg(&keep)
            .status();
        eprintln!("layers copied to {} ({st:?})", keep.display());
    }
    let top = c.layers.last().unwrap().clone();
    let lowers: Vec<PathBuf> = c.layers[..c.layers.len() - 1]
        .iter()
        .rev()
        .cloned()
        .collect();
    let all: Vec<PathBuf> = c.layers.iter().rev().cloned().collect();

    // Fast changes == whole-tree comparison of the mounted views.
    let fast = changes(&top, &lowers, WhiteoutFormat::Overlay).unwrap();
    let new = c.view("new", &all);
    let naive = if lowers.len() >= 2 {
        let old = c.view("old", &lowers);
        changes_naive(&new.path, Some(&old.path)).unwrap()
    } else {
        changes_naive(&new.path, Some(&lowers[0])).unwrap()
    };
    assert_eq!(lines(&fast), lines(&naive), "seed {seed}: fast != naive");

    // diff → apply onto a fresh child of the parent reproduces the merged view.
    let mut tar = Vec::new();
    export(&top, &mut tar, &ExportOptions::default()).unwrap();
    let fresh = c.path("fresh");
    std::fs::create_dir(&fresh).unwrap();
    apply(&tar[..], &fresh, &ApplyOptions::default()).unwrap();
    assert_eq!(
        diff_size(&fresh).unwrap(),
        diff_size(&top).unwrap(),
        "seed {seed}: size"
    );
    let mut again: Vec<PathBuf> = vec![fresh.clone()];
    again.extend(lowers.iter().cloned());
    let applied = c.view("applied", &again);
    let want = snapshot(&new.path, true);
    assert_same_tree(
        &want,
        &snapshot(&applied.path, true),
        &format!("seed {seed}: native diff → apply"),
    );
    // The tar carries whole-second mtimes (as Docker's) and a zero nanosecond field compares
    // equal (moby sameFsTime), so a round trip may only hide modifications: adds and deletes
    // are the same, modifies a subset.
    let again = changes(&fresh, &lowers, WhiteoutFormat::Overlay).unwrap();
    let not_modify = |c: &[Change]| -> Vec<String> {
        lines(c)
            .into_iter()
            .filter(|l| !l.starts_with('C'))
            .collect()
    };
    assert_eq!(
        not_modify(&again),
        not_modify(&fast),
        "seed {seed}: adds/deletes after apply"
    );
    let before: std::collections::BTreeSet<String> = lines(&fast).into_iter().collect();
    for l in lines(&again) {
        assert!(
            before.contains(&l),
            "seed {seed}: {l} appeared after the round trip"
        );
    }

    // Naive diff → apply onto the mounted parent (Docker's fallback) gives the same view.
    let mut ntar = Vec::new();
    export_changes(&new.path, &naive, &mut ntar, &ExportOptions::default()).unwrap();
    let nup = c.path("nup");
    let nwork = c.path("nwork");
    std::fs::create_dir(&nup).unwrap();
    std::fs::create_dir(&nwork).unwrap();
    let l: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
    let rw = Mount::overlay(&c.path("rw"), &l, Some((&nup, &nwork)));
    apply(
        &ntar[..],
        &rw.path,
        &ApplyOptions {
            whiteouts: WhiteoutFormat::Delete,
            ..Default::default()
        },
    )
    .unwrap();
    assert_same_tree(
        &snapshot(&new.path, false),
        &snapshot(&rw.path, false),
        &format!("seed {seed}: naive diff → apply"),
    );
}

#[test]
fn changes_random_two_layer_stacks_match_whole_tree_and_round_trip() {
    if !require_root("changes_random_two_layer_stacks_match_whole_tree_and_round_trip") {
        return;
    }
    for seed in 0..cases() {
        check(seed, 2);
    }
}

#[test]
fn changes_random_deep_stacks_match_whole_tree_and_round_trip() {
    if !require_root("changes_random_deep_stacks_match_whole_tree_and_round_trip") {
        return;
    }
    for seed in 100..100 + cases() {
        if std::env::var("STRATA_PROPERTY_ONLY").is_ok_and(|s| s != seed.to_string()) {
            continue;
        }
        check(seed, 3 + (seed as usize % 4));
    }
}
