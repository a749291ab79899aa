//! Test helpers: a raw tar builder (writes headers a tar library would refuse), the kit's root check,
//! tree snapshots for comparisons, and overlay mounts.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use strata_testkit::require_root;

/// Raw tar builder.
#[derive(Default)]
pub struct Tar {
    pub bytes: Vec<u8>,
}

#[derive(Clone)]
pub struct H {
    pub name: Vec<u8>,
    pub flag: u8,
    pub link: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: Option<u64>,
    pub mtime: u64,
    pub major: u32,
    pub minor: u32,
    pub prefix: Vec<u8>,
    pub magic: &'static [u8; 8],
    pub bad_checksum: bool,
}

pub fn h(name: &str, flag: u8) -> H {
    H {
        name: name.as_bytes().to_vec(),
        flag,
        link: Vec::new(),
        mode: if flag == b'5' { 0o755 } else { 0o644 },
        uid: 0,
        gid: 0,
        size: None,
        mtime: 1_600_000_000,
        major: 0,
        minor: 0,
        prefix: Vec::new(),
        magic: b"ustar\x0000",
        bad_checksum: false,
    }
}

impl H {
    pub fn link(mut self, l: &str) -> H {
        self.link = l.as_bytes().to_vec();
        self
    }
    pub fn mode(mut self, m: u32) -> H {
        self.mode = m;
        self
    }
    pub fn owner(mut self, u: u64, g: u64) -> H {
        self.uid = u;
        self.gid = g;
        self
    }
    pub fn mtime(mut self, t: u64) -> H {
        self.mtime = t;
        self
    }
    pub fn dev(mut self, ma: u32, mi: u32) -> H {
        self.major = ma;
        self.minor = mi;
        self
    }
}

fn octal(field: &mut [u8], v: u64) {
    let w = field.len() - 1;
    let s = format!("{v:0w$o}");
    field[..w].copy_from_slice(&s.as_bytes()[s.len() - w..]);
    field[w] = 0;
}

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }

    pub fn header(&mut self, h: &H, data_len: u64) {
        let mut b = [0u8; 512];
        let n = h.name.len().min(100);
        b[..n].copy_from_slice(&h.name[..n]);
        octal(&mut b[100..108], u64::from(h.mode));
        octal(&mut b[108..116], h.uid);
        octal(&mut b[116..124], h.gid);
        octal(&mut b[124..136], h.size.unwrap_or(data_len));
        octal(&mut b[136..148], h.mtime);
        b[156] = h.flag;
        let l = h.link.len().min(100);
        b[157..157 + l].copy_from_slice(&h.link[..l]);
        b[257..265].copy_from_slice(h.magic);
        octal(&mut b[329..337], u64::from(h.major));
        octal(&mut b[337..345], u64::from(h.minor));
        b[345..345 + h.prefix.len()].copy_from_slice(&h.prefix);
        b[148..156].copy_from_slice(b"        ");
        let sum: u64 = b.iter().map(|&x| u64::from(x)).sum::<u64>() + u64::from(h.bad_checksum);
        let s = format!("{sum:06o}\0 ");
        b[148..156].copy_from_slice(s.as_bytes());
        self.bytes.extend_from_slice(&b);
    }

    pub fn data(&mut self, d: &[u8]) {
        self.bytes.extend_from_slice(d);
        let pad = (512 - d.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0u8, pad));
    }

    pub fn entry(mut self, h: H, d: &[u8]) -> Tar {
        self.header(&h, d.len() as u64);
        self.data(d);
        self
    }

    pub fn file(self, name: &str, content: &[u8]) -> Tar {
        self.entry(h(name, b'0'), content)
    }
    pub fn dir(self, name: &str) -> Tar {
        self.entry(h(name, b'5'), b"")
    }
    pub fn symlink(self, name: &str, target: &str) -> Tar {
        self.entry(h(name, b'2').link(target), b"")
    }
    pub fn hardlink(self, name: &str, target: &str) -> Tar {
        self.entry(h(name, b'1').link(target), b"")
    }

    /// A PAX extended header with raw records.
    pub fn pax(self, records: &[(&[u8], &[u8])]) -> Tar {
        let mut data = Vec::new();
        for (k, v) in records {
            let base = k.len() + v.len() + 3;
            let mut len = base + 1;
            while base + len.to_string().len() != len {
                len = base + len.to_string().len();
            }
            data.extend_from_slice(len.to_string().as_bytes());
            data.push(b' ');
            data.extend_from_slice(k);
            data.push(b'=');
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        self.entry(h("PaxHeaders/x", b'x'), &data)
    }

    /// A GNU long name ('L') or long link ('K') header.
    pub fn gnu_long(self, flag: u8, name: &[u8]) -> Tar {
        let mut d = name.to_vec();
        d.push(0);
        let mut hh = h("././@LongLink", flag);
        hh.magic = b"ustar  \0";
        self.entry(hh, &d)
    }

    pub fn end(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&[0u8; 1024]);
        self.bytes
    }
    pub fn no_end(self) -> Vec<u8> {
        self.bytes
    }
}

/// One entry of a tree snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: Option<i64>,
    pub rdev: u64,
    pub target: Option<PathBuf>,
    pub content: Option<u64>,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

fn user_xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(p, &mut names[..]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
            continue;
        }
        let mut v = vec![0u8; 4096];
        if let Ok(l) = rustix::fs::lgetxattr(p, name, &mut v[..]) {
            v.truncate(l);
            out.push((String::from_utf8_lossy(name).into_owned(), v));
        }
    }
    out.sort();
    out
}

fn hash(b: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}

/// Snapshot of a tree (root excluded), keyed by relative path.
pub fn snapshot(root: &Path, dir_mtimes: bool) -> BTreeMap<String, Node> {
    let mut m = BTreeMap::new();
    walk(root, root, dir_mtimes, &mut m);
    m
}

fn walk(root: &Path, dir: &Path, dir_mtimes: bool, m: &mut BTreeMap<String, Node>) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let md = std::fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "other"
        };
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let node = Node {
            kind,
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            size: if ft.is_dir() { 0 } else { md.size() },
            // Whole seconds: exports truncate times as Docker's do.
            mtime: if ft.is_dir() && !dir_mtimes {
                None
            } else {
                Some(md.mtime())
            },
            rdev: md.rdev(),
            target: ft.is_symlink().then(|| std::fs::read_link(&p).unwrap()),
            content: ft.is_file().then(|| hash(&std::fs::read(&p).unwrap())),
            xattrs: if ft.is_symlink() {
                Vec::new()
            } else {
                user_xattrs(&p)
            },
        };
        m.insert(rel, node);
        if ft.is_dir() {
            walk(root, &p, dir_mtimes, m);
        }
    }
}

/// Asserts two snapshots are equal, printing the first differences.
pub fn assert_same_tree(a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>, what: &str) {
    if a == b {
        return;
    }
    let mut diffs = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => diffs.push(format!("only in left: {k}")),
            Some(w) if w != v => diffs.push(format!("differs: {k}\n  left  {v:?}\n  right {w:?}")),
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            diffs.push(format!("only in right: {k}"));
        }
    }
    diffs.truncate(10);
    panic!("{what}: trees differ:\n{}", diffs.join("\n"));
}

/// A mounted overlay, unmounted on drop.
pub struct Mount {
    pub path: PathBuf,
}

impl Mount {
    /// Read-write overlay (`upper`+`work`) or read-only (`upper` None) of `lowers` (top first).
    pub fn overlay(at: &Path, lowers: &[&Path], upper: Option<(&Path, &Path)>) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let lower = lowers
            .iter()
            .map(|p| p.to_str().unwrap())
            .collect::<Vec<_>>()
            .join(":");
        let mut opts = format!("lowerdir={lower},index=off,redirect_dir=off,metacopy=off");
        if let Some((u, w)) = upper {
            opts.push_str(&format!(
                ",upperdir={},workdir={}",
                u.display(),
                w.display()
            ));
        }
        let st = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount overlay {opts}");
        Mount {
            path: at.to_path_buf(),
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if !strata_testkit::mounts_under(&self.path).contains(&self.path) {
            return;
        }
        // A child another test thread is forking holds copies of our open directory fds until
        // it execs: the mount can be busy for a moment. Retry before calling it a leak.
        for _ in 0..20 {
            let _ = Command::new("umount").arg(&self.path).status();
            if !strata_testkit::mounts_under(&self.path).contains(&self.path) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if strata_testkit::mounts_under(&self.path).contains(&self.path) {
            // Busy (a test still holds a file open): detach it so nothing is left mounted, and
            // say so unless the test is already failing.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
            if !std::thread::panicking() {
                panic!("{} was busy at the end of the test", self.path.display());
            }
        }
    }
}

/// Writes a file, creating parents.
pub fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

pub fn is_whiteout(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

pub fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut v = vec![0u8; 4096];
    let l = rustix::fs::lgetxattr(p, name, &mut v[..]).ok()?;
    v.truncate(l);
    Some(v)
}

/// Sorted `C /path` lines.
pub fn lines(c: &[strata_archive::Change]) -> Vec<String> {
    c.iter().map(ToString::to_string).collect()
}
