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

    #[test]
    fn split_ustar_prefers_long_prefix() {
        let name = [&[b'd'; 60][..], b"/", &[b'e'; 60][..], b"/f"].concat();
        let (p, n) = split_ustar(&name).unwrap();
        assert_eq!(p.len(), 121);
        assert_eq!(n, b"f");
    }
}
