//! Entry points for the fuzz targets in `fuzz/` and their regression tests (feature `fuzzing`;
//! not a stable API). Each function panics when a property the crate promises does not hold;
//! an `Err` is an archive refused cleanly, which is fine.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::Result;
use crate::model::{ApplyOptions, ExportOptions, WhiteoutFormat};
use crate::tar::reader::Reader;
use crate::tar::writer::{Header, Writer};
use crate::tar::{Entry, Kind};

/// What the round trip compares of an entry: everything the writer can carry.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    kind: Kind,
    name: Vec<u8>,
    link: Vec<u8>,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: i64,
    dev: (u32, u32),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    data: Vec<u8>,
}

/// Largest data kept per entry for the comparison (the rest is only counted).
const KEEP: usize = 1 << 16;

/// Reads a whole archive as apply does, checking that every entry hands out exactly the data
/// its header announces and that a sparse map is ordered, disjoint and inside the file.
fn read(data: &[u8]) -> Result<(Vec<Seen>, bool)> {
    let mut r = Reader::new(data);
    let mut out = Vec::new();
    let mut any_sparse = false;
    while let Some(e) = r.next_entry()? {
        let Entry {
            kind,
            name,
            link,
            mode,
            uid,
            gid,
            size,
            mtime,
            devmajor,
            devminor,
            mut xattrs,
            sparse,
            ..
        } = e;
        let kind = kind.unwrap_or(Kind::Regular);
        let announced = if kind.header_only() { 0 } else { size };
        assert_eq!(r.remaining(), announced, "data announced for {name:?}");
        let mut got = Vec::new();
        let mut total = 0u64;
        loop {
            let c = r.data_chunk()?;
            if c.is_empty() {
                break;
            }
            total += c.len() as u64;
            let room = KEEP.saturating_sub(got.len()).min(c.len());
            got.extend_from_slice(&c[..room]);
        }
        assert_eq!(total, announced, "data read for {name:?}");
        if let Some(sp) = &sparse {
            any_sparse = true;
            let mut end = 0u64;
            let mut sum = 0u64;
            for &(o, l) in &sp.map {
                assert!(o >= end, "sparse fragments out of order");
                end = o + l;
                sum += l;
            }
            assert!(end <= sp.real_size, "sparse fragment beyond the file");
            assert_eq!(sum, size, "sparse fragments and stored data");
        }
        assert!(!name.contains(&0), "NUL in a name");
        xattrs.sort();
        out.push(Seen {
            kind,
            name,
            link,
            mode,
            uid,
            gid,
            size,
            mtime: mtime.secs,
            dev: (devmajor, devminor),
            xattrs,
            data: got,
        });
    }
    r.drain()?;
    Ok((out, any_sparse))
}

/// Reads `data` as a tar. When it reads cleanly (and holds no sparse file, which the writer
/// does not produce), writes the entries again with the crate's writer and reads that back:
/// the same entries must come out. Returns the number of entries.
///
/// # Errors
/// The archive is refused (corrupt, truncated).
///
/// # Panics
/// A property does not hold: that is a bug.
pub fn tar_roundtrip(data: &[u8]) -> Result<usize> {
    let (first, any_sparse) = read(data)?;
    let n = first.len();
    // Device numbers past 7 octal digits never come from a filesystem (majors have 12 bits,
    // minors 20); the writer only takes those.
    let representable = |s: &Seen| s.dev.0 <= 0o7777777 && s.dev.1 <= 0o7777777;
    if any_sparse
        || !first.iter().all(representable)
        || first
            .iter()
            .any(|s| s.data.len() as u64 != s.size && !s.kind.header_only())
    {
        return Ok(n);
    }
    let mut w = Writer::new(Vec::new());
    for s in &first {
        let dev = matches!(s.kind, Kind::Char | Kind::Block);
        w.header(&Header {
            name: &s.name,
            link: &s.link,
            kind: Some(s.kind),
            mode: s.mode,
            uid: s.uid,
            gid: s.gid,
            size: s.size,
            mtime: s.mtime,
            devmajor: if dev { s.dev.0 } else { 0 },
            devminor: if dev { s.dev.1 } else { 0 },
            xattrs: &s.xattrs,
            ..Header::default()
        })
        .expect("write to memory");
        if !s.kind.header_only() {
            w.data(&s.data).expect("write to memory");
            w.pad(s.size).expect("write to memory");
        }
    }
    let again = w.finish().expect("write to memory");
    let (second, _) = read(&again).unwrap_or_else(|e| panic!("re-read of written tar: {e:?}"));
    assert_eq!(second.len(), n, "entry count after the round trip");
    for (a, b) in first.iter().zip(&second) {
        let mut a_dev = a.dev;
        if !matches!(a.kind, Kind::Char | Kind::Block) {
            // Only devices carry numbers through the writer.
            a_dev = (0, 0);
        }
        let mut b_dev = b.dev;
        if !matches!(b.kind, Kind::Char | Kind::Block) {
            b_dev = (0, 0);
        }
        assert_eq!((a_dev, &a.kind), (b_dev, &b.kind));
        assert_eq!(
            (&a.name, &a.link, a.mode, a.uid, a.gid, a.size, a.mtime),
            (&b.name, &b.link, b.mode, b.uid, b.gid, b.size, b.mtime),
        );
        assert_eq!(a.xattrs, b.xattrs);
        assert_eq!(a.data, b.data);
    }
    Ok(n)
}

/// Files around the apply root that must never change: `canary` and `outside/canary` beside
/// it, with fixed content, mode and times.
const CANARY: &[u8] = b"canary: must never change\n";

/// Path, mode, uid, gid, size, mtime (s, ns) and content of one file beside the root.
type Neighbour = (String, u32, u32, u32, u64, i64, i64, Vec<u8>);

/// What a tree beside the root looks like, to compare before and after.
fn neighbourhood(sandbox: &Path) -> Vec<Neighbour> {
    let mut out = Vec::new();
    let mut stack = vec![sandbox.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .expect("read sandbox")
            .map(|e| e.expect("read sandbox").path())
            .collect();
        names.sort();
        for p in names {
            if p == sandbox.join("root") || p == sandbox.join("again") {
                continue;
            }
            let md = std::fs::symlink_metadata(&p).expect("lstat sandbox");
            let content = if md.is_file() {
                std::fs::read(&p).expect("read canary")
            } else {
                Vec::new()
            };
            out.push((
                p.display().to_string(),
                md.mode(),
                md.uid(),
                md.gid(),
                md.len(),
                md.mtime(),
                md.mtime_nsec(),
                content,
            ));
            if md.is_dir() {
                stack.push(p);
            }
        }
    }
    // The sandbox itself: not its times, which change as `root/` and `again/` are made anew
    // (anything else appearing in it is in the listing above).
    let md = std::fs::symlink_metadata(sandbox).expect("lstat sandbox");
    out.push((
        String::from("."),
        md.mode(),
        md.uid(),
        md.gid(),
        0,
        0,
        0,
        Vec::new(),
    ));
    out
}

/// Prepares `sandbox` (created if missing): an empty `root/` to apply into, and canaries
/// beside it. Call once; [`apply_contained`] resets `root/` itself.
///
/// # Panics
/// The sandbox cannot be set up.
pub fn apply_sandbox(sandbox: &Path) {
    std::fs::create_dir_all(sandbox.join("outside")).expect("create sandbox");
    std::fs::write(sandbox.join("canary"), CANARY).expect("write canary");
    std::fs::write(sandbox.join("outside/canary"), CANARY).expect("write canary");
}

/// Largest layer whose round trip is checked: export reads every byte of a file, holes too,
/// and a fuzzed sparse header can announce terabytes.
const ROUNDTRIP_MAX: u64 = 64 << 20;

fn fresh(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("remove {}: {e}", dir.display()),
    }
    std::fs::create_dir(dir).expect("create apply root");
}

/// Applies `data` into `sandbox/root` (emptied first) with the given whiteout format, then
/// checks that nothing beside the root changed; when the apply succeeded, exports the root,
/// applies that export into `sandbox/again` and exports again: the export must apply without
/// error and both exports must be the same bytes. Returns whether the first apply succeeded.
///
/// # Panics
/// Something outside the root changed, the export of an applied layer does not apply, or
/// apply-export-apply is not stable.
pub fn apply_contained(data: &[u8], sandbox: &Path, whiteouts: WhiteoutFormat) -> bool {
    let root = sandbox.join("root");
    let again = sandbox.join("again");
    fresh(&root);
    let before = neighbourhood(sandbox);
    let opts = ApplyOptions {
        whiteouts,
        ..ApplyOptions::default()
    };
    let applied = crate::apply(data, &root, &opts);
    assert_eq!(
        neighbourhood(sandbox),
        before,
        "apply changed something outside its root"
    );
    if applied.is_err() {
        return false;
    }
    if crate::diff_size(&root).map_or(true, |s| s > ROUNDTRIP_MAX) {
        return true;
    }
    let eopts = ExportOptions {
        whiteouts,
        ..ExportOptions::default()
    };
    let mut first = Vec::new();
    crate::export(&root, &mut first, &eopts).expect("export of an applied layer");
    fresh(&again);
    crate::apply(&first[..], &again, &opts)
        .unwrap_or_else(|e| panic!("the export of an applied layer does not apply: {e:?}"));
    let mut second = Vec::new();
    crate::export(&again, &mut second, &eopts).expect("export of the re-applied layer");
    assert!(first == second, "apply-export-apply is not stable");
    assert_eq!(
        neighbourhood(sandbox),
        before,
        "re-apply changed something outside"
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed seeds and crash regressions of a fuzz target, by file name.
    pub(crate) fn inputs(dirs: &[&str]) -> Vec<(String, Vec<u8>)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let mut out = Vec::new();
        for d in dirs {
            let Ok(rd) = std::fs::read_dir(root.join(d)) else {
                continue;
            };
            for e in rd {
                let p = e.expect("read fuzz inputs").path();
                if p.extension().is_some_and(|x| x == "sh") {
                    continue;
                }
                out.push((
                    p.display().to_string(),
                    std::fs::read(&p).expect("read input"),
                ));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn tar_roundtrip_holds_for_fuzz_seeds_and_regressions() {
        let seeds = inputs(&["seeds/tar", "seeds/apply"]);
        assert!(seeds.len() >= 10, "the seed corpus is missing");
        for (name, data) in &seeds {
            // Seeds are well-formed archives.
            let n = tar_roundtrip(data).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(n > 0, "{name}: no entries");
        }
        for (_, data) in inputs(&["regressions/tar_reader"]) {
            let _ = tar_roundtrip(&data);
        }
    }

    /// Root, or a skip (a failure under `STRATA_REQUIRE_ROOT=1`).
    fn root(what: &str) -> bool {
        if rustix::process::geteuid().is_root() {
            return true;
        }
        assert!(
            std::env::var("STRATA_REQUIRE_ROOT").as_deref() != Ok("1"),
            "{what}: needs root and STRATA_REQUIRE_ROOT=1"
        );
        false
    }

    #[test]
    fn apply_is_contained_and_stable_for_fuzz_seeds_and_regressions() {
        if !root("apply_is_contained_and_stable_for_fuzz_seeds_and_regressions") {
            return;
        }
        let base = tempfile::tempdir().expect("tempdir");
        let sandbox = base.path().join("apply");
        apply_sandbox(&sandbox);
        let seeds = inputs(&["seeds/tar", "seeds/apply"]);
        for (name, data) in &seeds {
            for w in [
                WhiteoutFormat::Overlay,
                WhiteoutFormat::OverlayUserXattr,
                WhiteoutFormat::Delete,
            ] {
                // The hostile seeds fail cleanly or apply inside; the others apply.
                let ok = apply_contained(data, &sandbox, w);
                assert!(
                    ok || name.contains("/seeds/apply/"),
                    "{name} ({w:?}) did not apply"
                );
            }
        }
        for (_, data) in inputs(&["regressions/apply"]) {
            for w in [
                WhiteoutFormat::Overlay,
                WhiteoutFormat::OverlayUserXattr,
                WhiteoutFormat::Delete,
            ] {
                apply_contained(&data, &sandbox, w);
            }
        }
    }
}
