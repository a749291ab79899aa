//! `/proc/self/mountinfo`: a pure parser plus a reader. Never mounts anything.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// One line of mountinfo (the fields strata uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Mount id.
    pub id: u32,
    /// Parent mount id.
    pub parent: u32,
    /// Where it is mounted (octal escapes decoded).
    pub mount_point: PathBuf,
    /// Filesystem type (`overlay`, `ext4`, …).
    pub fs_type: String,
    /// Mount source.
    pub source: String,
    /// Per-superblock options (`rw,lowerdir=…`).
    pub super_options: String,
    /// Per-mount options (`rw,relatime`).
    pub mount_options: String,
}

/// Decodes mountinfo's `\ooo` octal escapes (space, tab, newline, backslash).
fn unescape(s: &str) -> OsString {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    OsString::from_vec(out)
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let (head, tail) = line.split_once(" - ")?;
    let mut h = head.split(' ');
    let id = h.next()?.parse().ok()?;
    let parent = h.next()?.parse().ok()?;
    let _dev = h.next()?;
    let _root = h.next()?;
    let mount_point = PathBuf::from(unescape(h.next()?));
    let mount_options = h.next()?.to_owned();
    let mut t = tail.split(' ');
    let fs_type = t.next()?.to_owned();
    let source = unescape(t.next()?).to_string_lossy().into_owned();
    let super_options = t.next().unwrap_or("").to_owned();
    Some(MountEntry {
        id,
        parent,
        mount_point,
        fs_type,
        source,
        super_options,
        mount_options,
    })
}

/// Reads and parses `/proc/self/mountinfo`.
///
/// # Errors
/// The file cannot be read.
pub fn read() -> io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
97 22 0:44 / /var/lib/strata/abc/merged rw,relatime shared:50 - overlay overlay rw,lowerdir=/var/lib/strata/l/A:/var/lib/strata/l/B,upperdir=/var/lib/strata/abc/diff,workdir=/var/lib/strata/abc/work,index=off
98 22 0:45 / /tmp/with\\040space rw - tmpfs tmpfs rw
bogus line
";

    #[test]
    fn parse_mountinfo_overlay_line_fields() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].id, 97);
        assert_eq!(m[1].parent, 22);
        assert_eq!(m[1].fs_type, "overlay");
        assert_eq!(
            m[1].mount_point,
            PathBuf::from("/var/lib/strata/abc/merged")
        );
        assert!(m[1].super_options.contains("index=off"));
    }

    #[test]
    fn parse_mountinfo_octal_escape_decoded() {
        let m = parse(SAMPLE);
        assert_eq!(m[2].mount_point, PathBuf::from("/tmp/with space"));
    }
}
