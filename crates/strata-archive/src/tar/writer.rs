//! Deterministic tar writer: USTAR headers, with a PAX extended header only when a value does
//! not fit (long or non-ASCII names, big ids or sizes, negative times) or xattrs are present.
//! No atime/ctime is ever written, records are sorted, so equal input gives equal bytes.
//! Never reads the filesystem.

use std::io::Write;

use super::{Kind, BLOCK};
use crate::error::{Error, Result};

/// Header fields of one entry to write.
#[derive(Debug, Default)]
pub(crate) struct Header<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) link: &'a [u8],
    pub(crate) kind: Option<Kind>,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) size: u64,
    pub(crate) mtime: i64,
    pub(crate) devmajor: u32,
    pub(crate) devminor: u32,
    pub(crate) uname: &'a [u8],
    pub(crate) gname: &'a [u8],
    /// Extended attributes, sorted by name.
    pub(crate) xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

/// Writes tar blocks to `W`.
#[derive(Debug)]
pub(crate) struct Writer<W> {
    out: W,
}

fn write_octal(field: &mut [u8], v: u64) -> bool {
    // width-1 digits then NUL, as Go's formatOctal.
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    if s.len() > digits {
        return false;
    }
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    true
}

fn fits_ustar_string(s: &[u8], max: usize) -> bool {
    s.len() <= max && s.is_ascii() && !s.contains(&0)
}

/// Splits a long name into USTAR prefix (≤155) and name (≤100) at a slash.
fn split_ustar(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 || !name.is_ascii() {
        return None;
    }
    let max_prefix = name.len().min(156);
    let i = name[..max_prefix].iter().rposition(|&b| b == b'/')?;
    let (p, n) = (&name[..i], &name[i + 1..]);
    if p.is_empty() || n.is_empty() || p.len() > 155 || n.len() > 100 {
        return None;
    }
    Some((p, n))
}

fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    // LEN counts itself: find the fixed point.
    let base = key.len() + value.len() + 3;
    let mut len = base + 1;
    while base + len.to_string().len() != len {
        len = base + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

impl<W: Write> Writer<W> {
    pub(crate) fn new(out: W) -> Self {
        Writer { out }
    }

    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.out
            .write_all(b)
            .map_err(|source| Error::Write { source })
    }

    /// Writes the header (and a PAX header before it when needed).
    pub(crate) fn header(&mut self, h: &Header<'_>) -> Result<()> {
        let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut blk = [0u8; BLOCK];
        let (prefix, short) = if fits_ustar_string(h.name, 100) {
            (&b""[..], h.name)
        } else if let Some((p, n)) = split_ustar(h.name) {
            (p, n)
        } else {
            pax.push((b"path".to_vec(), h.name.to_vec()));
            (&b""[..], &h.name[..h.name.len().min(100)])
        };
        blk[..short.len()].copy_from_slice(short);
        blk[345..345 + prefix.len()].copy_from_slice(prefix);
        write_octal(&mut blk[100..108], u64::from(h.mode & 0o7777));
        if !write_octal(&mut blk[108..116], h.uid) {
            pax.push((b"uid".to_vec(), h.uid.to_string().into_bytes()));
            write_octal(&mut blk[108..116], 0);
        }
        if !write_octal(&mut blk[116..124], h.gid) {
            pax.push((b"gid".to_vec(), h.gid.to_string().into_bytes()));
            write_octal(&mut blk[116..124], 0);
        }
        if !write_octal(&mut blk[124..136], h.size) {
            pax.push((b"size".to_vec(), h.size.to_string().into_bytes()));
            write_octal(&mut blk[124..136], 0);
        }
        match u64::try_from(h.mtime) {
            Ok(m) if write_octal(&mut blk[136..148], m) => {}
            _ => {
                pax.push((b"mtime".to_vec(), h.mtime.to_string().into_bytes()));
                write_octal(&mut blk[136..148], 0);
            }
        }
        blk[156] = h.kind.unwrap_or(Kind::Regular).flag();
        if fits_ustar_string(h.link, 100) {
            blk[157..157 + h.link.len()].copy_from_slice(h.link);
        } else {
            pax.push((b"linkpath".to_vec(), h.link.to_vec()));
        }
        blk[257..263].copy_from_slice(b"ustar\0");
        blk[263..265].copy_from_slice(b"00");
        for (val, range, key) in [
            (h.uname, 265..297, &b"uname"[..]),
            (h.gname, 297..329, &b"gname"[..]),
        ] {
            if fits_ustar_string(val, 31) {
                blk[range.start..range.start + val.len()].copy_from_slice(val);
            } else {
                pax.push((key.to_vec(), val.to_vec()));
            }
        }
        if matches!(h.kind, Some(Kind::Char | Kind::Block)) {
            write_octal(&mut blk[329..337], u64::from(h.devmajor));
            write_octal(&mut blk[337..345], u64::from(h.devminor));
        } else {
            write_octal(&mut blk[329..337], 0);
            write_octal(&mut blk[337..345], 0);
        }
        for (k, v) in h.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            pax.push((key, v.clone()));
        }
        if !pax.is_empty() {
            pax.sort();
            let mut data = Vec::new();
            for (k, v) in &pax {
                pax_record(&mut data, k, v);
            }
            self.pax_header(h.name, &data)?;
        }
        finish_checksum(&mut blk);
        self.put(&blk)
    }

    fn pax_header(&mut self, name: &[u8], data: &[u8]) -> Result<()> {
        // As Go: "<dir>/PaxHeaders.0/<base>", truncated to fit.
        let trimmed = name.strip_suffix(b"/").unwrap_or(name);
        let (dir, base) = crate::path::split_last(trimmed);
        let mut pname = Vec::new();
        if !dir.is_empty() {
            pname.extend_from_slice(dir);
            pname.push(b'/');
        }
        pname.extend_from_slice(b"PaxHeaders.0/");
        pname.extend_from_slice(base);
        pname.truncate(100);
        let pname: Vec<u8> = pname
            .into_iter()
            .map(|b| if b.is_ascii() { b } else { b'_' })
            .collect();
        let mut blk = [0u8; BLOCK];
        blk[..pname.len()].copy_from_slice(&pname);
        write_octal(&mut blk[100..108], 0);
        write_octal(&mut blk[108..116], 0);
        write_octal(&mut blk[116..124], 0);
        write_octal(&mut blk[124..136], data.len() as u64);
        write_octal(&mut blk[136..148], 0);
        blk[156] = b'x';
        blk[257..263].copy_from_slice(b"ustar\0");
        blk[263..265].copy_from_slice(b"00");
        write_octal(&mut blk[329..337], 0);
        write_octal(&mut blk[337..345], 0);
        finish_checksum(&mut blk);
        self.put(&blk)?;
        self.put(data)?;
        self.pad(data.len() as u64)
    }

    /// Writes raw data bytes of the current entry.
    pub(crate) fn data(&mut self, b: &[u8]) -> Result<()> {
        self.put(b)
    }

    /// Pads the current entry's `len` data bytes to a block boundary.
    pub(crate) fn pad(&mut self, len: u64) -> Result<()> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.put(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Writes the end-of-archive marker (two zero blocks, as Go's `Writer.Close`) and flushes.
    pub(crate) fn finish(mut self) -> Result<W> {
        self.put(&[0u8; 2 * BLOCK])?;
        self.out.flush().map_err(|source| Error::Write { source })?;
        Ok(self.out)
    }
}

fn finish_checksum(blk: &mut [u8; BLOCK]) {
    blk[148..156].copy_from_slice(b"        ");
    let sum: u64 = blk.iter().map(|&b| u64::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    blk[148..156].copy_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(&mut v, b"path", b"abcdef");
        assert_eq!(v, b"15 path=abcdef\n");
        let mut v = Vec::new();
        let long = vec![b'a'; 95];
        pax_record(&mut v, b"path", &long);
        assert_eq!(v.len(), 105);
        assert!(v.starts_with(b"105 path="));
    }

    fn archive(headers: &[Header<'_>]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new());
        for h in headers {
            w.header(h).expect("header");
        }
        w.finish().expect("finish")
    }

    /// The records of the PAX header that precedes the first entry, and that entry's block.
    fn pax_and_block(b: &[u8]) -> (Vec<u8>, [u8; BLOCK]) {
        assert_eq!(b[156], b'x', "a PAX header first");
        let field = std::str::from_utf8(&b[124..135]).expect("octal");
        let n = usize::from_str_radix(field, 8).expect("octal");
        let data = b[BLOCK..BLOCK + n].to_vec();
        let at = BLOCK + n.div_ceil(BLOCK) * BLOCK;
        let mut blk = [0u8; BLOCK];
        blk.copy_from_slice(&b[at..at + BLOCK]);
        (data, blk)
    }

    /// GNU tar's verbose numeric listing of an archive.
    fn gnu_list(b: &[u8]) -> String {
        use std::io::Write as _;
        let mut child = std::process::Command::new("tar")
            .args(["--numeric-owner", "-tvf", "-"])
            .env("TZ", "UTC")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("GNU tar");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b)
            .expect("write");
        let out = child.wait_with_output().expect("tar");
        assert!(out.status.success(), "GNU tar reads the archive");
        String::from_utf8(out.stdout).expect("utf-8")
    }

    #[test]
    fn values_too_large_for_ustar_go_to_pax_records() {
        let long_link = vec![b'l'; 101];
        let uname = vec![b'u'; 32];
        let h = Header {
            name: b"d/f",
            link: &long_link,
            kind: Some(Kind::Symlink),
            mode: 0o777,
            uid: 0o10_000_000,
            gid: 4_294_967_295,
            size: 0,
            mtime: -1,
            uname: &uname,
            gname: "gr\u{fc}n".as_bytes(),
            ..Header::default()
        };
        let b = archive(&[h]);
        let (pax, blk) = pax_and_block(&b);
        let want = [
            "18 gid=4294967295\n".to_string(),
            "15 gname=gr\u{fc}n\n".to_string(),
            format!("115 linkpath={}\n", "l".repeat(101)),
            "12 mtime=-1\n".to_string(),
            "15 uid=2097152\n".to_string(),
            format!("42 uname={}\n", "u".repeat(32)),
        ]
        .concat();
        assert_eq!(String::from_utf8_lossy(&pax), want);
        // The USTAR fields that did not fit hold zero or nothing.
        assert_eq!(&blk[108..116], b"0000000\0");
        assert_eq!(&blk[116..124], b"0000000\0");
        assert_eq!(&blk[136..148], b"00000000000\0");
        assert!(blk[157..257].iter().all(|&c| c == 0));
        assert!(blk[265..329].iter().all(|&c| c == 0));
        // The PAX header is named after the entry, as Go names it.
        assert_eq!(&b[..18], b"d/PaxHeaders.0/f\0\0");
        let listed = gnu_list(&b);
        assert!(
            listed.starts_with("lrwxrwxrwx 2097152/4294967295 0 1969-12-31 23:59 d/f -> l"),
            "{listed}"
        );
    }

    #[test]
    fn values_that_just_fit_stay_in_ustar() {
        let name = vec![b'n'; 100];
        let link = vec![b'l'; 100];
        let uname = vec![b'u'; 31];
        let h = Header {
            name: &name,
            link: &link,
            kind: Some(Kind::Hardlink),
            mode: 0o644,
            uid: 0o7_777_777,
            gid: 0o7_777_777,
            size: 0,
            mtime: 0o77_777_777_777,
            uname: &uname,
            gname: &uname,
            ..Header::default()
        };
        let b = archive(&[h]);
        assert_eq!(b.len(), 3 * BLOCK, "one header, no PAX");
        assert_eq!(&b[..100], &name[..]);
        assert_eq!(&b[108..116], b"7777777\0");
        assert_eq!(&b[136..148], b"77777777777\0");
        assert_eq!(&b[157..257], &link[..]);
        assert_eq!(&b[265..296], &uname[..]);
        assert_eq!(&b[297..328], &uname[..]);
        let h = Header {
            name: b"big",
            size: 0o77_777_777_777,
            ..Header::default()
        };
        let mut w = Writer::new(Vec::new());
        w.header(&h).expect("header");
        assert_eq!(w.out.len(), BLOCK, "no PAX for the largest USTAR size");
        assert_eq!(&w.out[124..136], b"77777777777\0");
        let h = Header {
            name: b"bigger",
            size: 0o100_000_000_000,
            ..Header::default()
        };
        let mut w = Writer::new(Vec::new());
        w.header(&h).expect("header");
        assert_eq!(&w.out[BLOCK..BLOCK + 19], b"19 size=8589934592\n");
        assert_eq!(&w.out[BLOCK * 2 + 124..BLOCK * 2 + 136], b"00000000000\0");
    }

    #[test]
    fn names_split_at_the_ustar_limits_or_go_to_pax() {
        // Prefix of exactly 155 and name of exactly 100 bytes: split.
        let p155 = [&[b'p'; 77][..], b"/", &[b'q'; 77][..]].concat();
        let fits = [&p155[..], b"/", &[b'n'; 100][..]].concat();
        let b = archive(&[Header {
            name: &fits,
            ..Header::default()
        }]);
        assert_eq!(b.len(), 3 * BLOCK, "no PAX");
        assert_eq!(&b[..100], &[b'n'; 100][..]);
        assert_eq!(&b[345..500], &p155[..]);
        // One more byte on either side: PAX.
        for long in [
            [&p155[..], b"x/", &[b'n'; 100][..]].concat(),
            [&p155[..], b"/", &[b'n'; 101][..]].concat(),
        ] {
            let b = archive(&[Header {
                name: &long,
                ..Header::default()
            }]);
            let (pax, blk) = pax_and_block(&b);
            assert!(pax.ends_with(&[b"path=", &long[..], b"\n"].concat()));
            assert_eq!(&blk[..100], &long[..100]);
            assert!(blk[345..500].iter().all(|&c| c == 0));
        }
        // No slash to split at, or an empty prefix or name: PAX.
        for long in [
            vec![b'a'; 101],
            [b"/", &[b'a'; 100][..]].concat(),
            [&[b'a'; 101][..], b"/"].concat(),
        ] {
            let b = archive(&[Header {
                name: &long,
                ..Header::default()
            }]);
            assert_eq!(b[156], b'x', "{}", String::from_utf8_lossy(&long));
        }
        // A long non-ASCII name is not split (USTAR fields are ASCII): PAX.
        let long = [&[b'a'; 100][..], "/\u{e9}".as_bytes()].concat();
        let b = archive(&[Header {
            name: &long,
            ..Header::default()
        }]);
        let (pax, blk) = pax_and_block(&b);
        assert!(pax.ends_with(&[b"path=", &long[..], b"\n"].concat()));
        assert!(blk[345..500].iter().all(|&c| c == 0));
        // A non-ASCII name: PAX, and the PAX header's own name is ASCII.
        let b = archive(&[Header {
            name: "d\u{e9}j\u{e0}/f".as_bytes(),
            kind: Some(Kind::Dir),
            ..Header::default()
        }]);
        assert_eq!(&b[..20], b"d__j__/PaxHeaders.0/");
        // A long name's PAX header name is cut to 100 bytes.
        let long = [&[b'a'; 160][..], b"/b"].concat();
        let b = archive(&[Header {
            name: &long,
            ..Header::default()
        }]);
        assert_eq!(&b[..100], &[b'a'; 100][..]);
        assert_eq!(b[100..108], *b"0000000\0", "the PAX header's mode follows");
    }

    #[test]
    fn device_numbers_only_for_devices_and_data_is_padded() {
        let dev = |kind| Header {
            name: b"n",
            kind: Some(kind),
            devmajor: 8,
            devminor: 0o1_234_567,
            ..Header::default()
        };
        for (kind, major, minor) in [
            (Kind::Char, b"0000010\0", b"1234567\0"),
            (Kind::Block, b"0000010\0", b"1234567\0"),
            (Kind::Fifo, b"0000000\0", b"0000000\0"),
            (Kind::Regular, b"0000000\0", b"0000000\0"),
        ] {
            let b = archive(&[dev(kind)]);
            assert_eq!(&b[329..337], major, "{kind:?}");
            assert_eq!(&b[337..345], minor, "{kind:?}");
        }
        for (len, padded) in [
            (0u64, 0usize),
            (1, BLOCK),
            (BLOCK as u64, BLOCK),
            (513, 2 * BLOCK),
        ] {
            let mut w = Writer::new(Vec::new());
            w.data(&vec![1u8; usize::try_from(len).unwrap()])
                .expect("data");
            w.pad(len).expect("pad");
            assert_eq!(w.out.len(), padded, "{len} bytes");
            assert!(w.out[usize::try_from(len).unwrap()..]
                .iter()
                .all(|&c| c == 0));
        }
        let end = Writer::new(Vec::new()).finish().expect("finish");
        assert_eq!(end, vec![0u8; 2 * BLOCK]);
    }

    #[test]
    fn split_ustar_prefers_long_prefix() {
        let name = [&[b'd'; 60][..], b"/", &[b'e'; 60][..], b"/f"].concat();
        let (p, n) = split_ustar(&name).unwrap();
        assert_eq!(p.len(), 121);
        assert_eq!(n, b"f");
    }
}
