//! Streaming tar reader. Owns header decoding and the data cursor; it hands out file data in
//! chunks borrowed from its own fixed buffer, so memory stays bounded whatever the archive holds.
//! Never allocates in proportion to file sizes; extended headers are capped at 1 MiB.

use std::io::{self, Read};

use super::{Entry, Kind, Sparse, Time, BLOCK, MAX_SPECIAL};
use crate::error::{short, Error, Result};

const BUF: usize = 256 * 1024;

/// Streaming reader over an uncompressed tar.
pub(crate) struct Reader<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// Data bytes of the current entry not yet consumed.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    /// Index of the entry being read, for error messages.
    index: u64,
    done: bool,
    /// The input reported its end; it is not read again.
    eof: bool,
}

impl<R> std::fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("index", &self.index)
            .finish()
    }
}

fn corrupt(entry: u64, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        entry,
        reason: reason.into(),
    }
}

fn pad(n: u64) -> u64 {
    (BLOCK as u64 - n % BLOCK as u64) % BLOCK as u64
}

/// Parses a numeric header field: octal (spaces/NULs around) or GNU base-256.
fn parse_num(field: &[u8]) -> Option<u64> {
    if let Some(&first) = field.first() {
        if first & 0x80 != 0 {
            // Base-256: the first byte's high bit marks it; 0xff marks a negative number.
            if first == 0xff {
                return None;
            }
            let mut v: u64 = u64::from(first & 0x7f);
            for &b in &field[1..] {
                v = v.checked_mul(256)?.checked_add(u64::from(b))?;
            }
            return Some(v);
        }
    }
    let s = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ' || b == 0)
        .take_while(|&b| b != b' ' && b != 0)
        .collect::<Vec<u8>>();
    if s.is_empty() {
        return Some(0);
    }
    let mut v: u64 = 0;
    for b in s {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(i) => &field[..i],
        None => field,
    }
}

/// Parses a PAX time value: `secs[.frac]`, possibly negative.
fn parse_pax_time(v: &[u8]) -> Option<Time> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(b - b'0') * 10u32.pow(8 - u32::try_from(i).ok()?);
    }
    if neg {
        if nanos == 0 {
            Some(Time { secs: -secs, nanos })
        } else {
            Some(Time {
                secs: -secs - 1,
                nanos: 1_000_000_000 - nanos,
            })
        }
    } else {
        Some(Time { secs, nanos })
    }
}

fn parse_dec(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Extended attributes of pending PAX/GNU headers, merged into the next real header.
#[derive(Default)]
struct Pending {
    name: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    pax: Vec<(Vec<u8>, Vec<u8>)>,
}

impl<R: Read> Reader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Reader {
            inner,
            buf: vec![0u8; BUF].into_boxed_slice(),
            pos: 0,
            len: 0,
            remaining: 0,
            padding: 0,
            index: 0,
            done: false,
            eof: false,
        }
    }

    fn read_err(&self, e: io::Error) -> Error {
        Error::Read {
            entry: self.index,
            source: e,
        }
    }

    /// Refills the buffer; returns false at end of input.
    fn fill(&mut self) -> Result<bool> {
        if self.pos < self.len {
            return Ok(true);
        }
        self.pos = 0;
        self.len = 0;
        if self.eof {
            return Ok(false);
        }
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.len = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_err(e)),
            }
        }
    }

    /// Reads exactly one block; `Ok(false)` at a clean end of input before its first byte.
    fn read_block(&mut self, blk: &mut [u8; BLOCK]) -> Result<bool> {
        let mut got = 0;
        while got < BLOCK {
            if !self.fill()? {
                if got == 0 {
                    return Ok(false);
                }
                return Err(self.read_err(io::ErrorKind::UnexpectedEof.into()));
            }
            let n = (self.len - self.pos).min(BLOCK - got);
            blk[got..got + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            got += n;
        }
        Ok(true)
    }

    /// Skips `n` bytes of input, failing if the input ends first.
    fn skip(&mut self, mut n: u64) -> Result<()> {
        while n > 0 {
            if !self.fill()? {
                return Err(self.read_err(io::ErrorKind::UnexpectedEof.into()));
            }
            let avail = (self.len - self.pos) as u64;
            let take = avail.min(n);
            self.pos += usize::try_from(take).unwrap_or(usize::MAX);
            n -= take;
        }
        Ok(())
    }

    /// The next chunk of the current entry's data (empty when it is all consumed).
    pub(crate) fn data_chunk(&mut self) -> Result<&[u8]> {
        self.data_chunk_max(usize::MAX)
    }

    /// Like [`Reader::data_chunk`], at most `max` bytes.
    pub(crate) fn data_chunk_max(&mut self, max: usize) -> Result<&[u8]> {
        if self.remaining == 0 || max == 0 {
            return Ok(&[]);
        }
        if !self.fill()? {
            return Err(self.read_err(io::ErrorKind::UnexpectedEof.into()));
        }
        let avail = (self.len - self.pos).min(max);
        let take = usize::try_from(self.remaining).map_or(avail, |r| r.min(avail));
        let start = self.pos;
        self.pos += take;
        self.remaining -= take as u64;
        Ok(&self.buf[start..start + take])
    }

    /// Reads the whole (small) data of the current entry into memory.
    fn data_vec(&mut self, limit: u64) -> Result<Vec<u8>> {
        if self.remaining > limit {
            return Err(corrupt(
                self.index,
                format!(
                    "extended header of {} bytes exceeds the limit",
                    self.remaining
                ),
            ));
        }
        let mut v = Vec::with_capacity(usize::try_from(self.remaining).unwrap_or(0));
        loop {
            let c = self.data_chunk()?;
            if c.is_empty() {
                break;
            }
            v.extend_from_slice(c);
        }
        self.finish_entry()?;
        Ok(v)
    }

    /// Skips whatever is left of the current entry's data and its padding.
    ///
    /// The data must be there; the padding may be cut short by the end of the input, as Go's
    /// `archive/tar` writers leave it when they are never closed (umoci's layers end so). The
    /// next header read then meets the end of input and decides whether that end is clean.
    pub(crate) fn finish_entry(&mut self) -> Result<()> {
        let data = self.remaining;
        let padding = self.padding;
        self.remaining = 0;
        self.padding = 0;
        self.skip(data)?;
        self.skip_padding(padding)
    }

    /// Skips up to `n` bytes of padding, stopping quietly at the end of the input.
    fn skip_padding(&mut self, mut n: u64) -> Result<()> {
        while n > 0 && self.fill()? {
            let avail = (self.len - self.pos) as u64;
            let take = avail.min(n);
            self.pos += usize::try_from(take).unwrap_or(usize::MAX);
            n -= take;
        }
        Ok(())
    }

    /// Bytes of data left in the current entry.
    pub(crate) fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Consumes everything after the end-of-archive marker (as dockerd drains its input).
    pub(crate) fn drain(&mut self) -> Result<()> {
        self.pos = self.len;
        while self.fill()? {
            self.pos = self.len;
        }
        Ok(())
    }

    fn begin_data(&mut self, size: u64) {
        self.remaining = size;
        self.padding = pad(size);
    }

    /// Index of the entry last returned.
    pub(crate) fn index(&self) -> u64 {
        self.index
    }

    /// Decodes the next entry; `None` at the end of the archive: end-of-archive blocks, or the
    /// end of input where a header would start, or inside the padding after an entry's data
    /// (Go's `archive/tar`, which Docker and containerd use, accepts all three). The end of
    /// input inside a header, inside an entry's data, or after an extended header whose entry
    /// never came is an error.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>> {
        if self.done {
            return Ok(None);
        }
        self.finish_entry()?;
        let mut pending = Pending::default();
        let mut blk = [0u8; BLOCK];
        loop {
            if !self.read_block(&mut blk)? {
                if pending.name.is_some() || pending.link.is_some() || !pending.pax.is_empty() {
                    return Err(self.read_err(io::ErrorKind::UnexpectedEof.into()));
                }
                self.done = true;
                return Ok(None);
            }
            if blk.iter().all(|&b| b == 0) {
                // As Go's archive/tar: a zero block must be followed by another or by the end.
                let mut second = [0u8; BLOCK];
                if self.read_block(&mut second)? && second.iter().any(|&b| b != 0) {
                    return Err(corrupt(
                        self.index,
                        "zero block followed by a non-zero block",
                    ));
                }
                self.done = true;
                return Ok(None);
            }
            self.check_sum(&blk)?;
            let flag = blk[156];
            let size = parse_num(&blk[124..136])
                .ok_or_else(|| corrupt(self.index, "invalid size field"))?;
            match flag {
                b'x' | b'g' => {
                    self.begin_data(size);
                    let data = self.data_vec(MAX_SPECIAL)?;
                    if flag == b'x' {
                        let recs = parse_pax(&data)
                            .ok_or_else(|| corrupt(self.index, "malformed PAX extended header"))?;
                        pending.pax.extend(recs);
                    }
                    // Global headers ('g') are ignored, as Docker does.
                }
                b'L' | b'K' => {
                    self.begin_data(size);
                    let data = self.data_vec(MAX_SPECIAL)?;
                    let s = cstr(&data).to_vec();
                    if flag == b'L' {
                        pending.name = Some(s);
                    } else {
                        pending.link = Some(s);
                    }
                }
                _ => {
                    let e = self.decode(&blk, size, pending)?;
                    self.index += 1;
                    return Ok(Some(e));
                }
            }
        }
    }

    fn check_sum(&self, blk: &[u8; BLOCK]) -> Result<()> {
        let want = parse_num(&blk[148..156]).ok_or_else(|| corrupt(self.index, "bad checksum"))?;
        let mut unsigned: u64 = 0;
        let mut signed: i64 = 0;
        for (i, &b) in blk.iter().enumerate() {
            let b = if (148..156).contains(&i) { b' ' } else { b };
            unsigned += u64::from(b);
            signed += i64::from(b as i8);
        }
        if want == unsigned || i64::try_from(want).ok() == Some(signed) {
            Ok(())
        } else {
            Err(corrupt(self.index, "header checksum mismatch"))
        }
    }

    fn decode(&mut self, blk: &[u8; BLOCK], size: u64, pending: Pending) -> Result<Entry> {
        let idx = self.index;
        let num = |r: std::ops::Range<usize>, what: &str| {
            parse_num(&blk[r]).ok_or_else(|| corrupt(idx, format!("invalid {what} field")))
        };
        let magic = &blk[257..263];
        let ustar = magic == b"ustar\0";
        let gnu = magic == b"ustar " && &blk[263..265] == b" \0";
        let mut e = Entry {
            mode: u32::try_from(num(100..108, "mode")? & 0o7777)
                .map_err(|_| corrupt(idx, "mode"))?,
            uid: num(108..116, "uid")?,
            gid: num(116..124, "gid")?,
            size,
            mtime: Time {
                secs: i64::try_from(num(136..148, "mtime")?)
                    .map_err(|_| corrupt(idx, "mtime out of range"))?,
                nanos: 0,
            },
            ..Entry::default()
        };
        let mut name = cstr(&blk[0..100]).to_vec();
        if ustar {
            let prefix = cstr(&blk[345..500]);
            if !prefix.is_empty() {
                let mut full = prefix.to_vec();
                full.push(b'/');
                full.extend_from_slice(&name);
                name = full;
            }
        }
        let mut flag = blk[156];
        if flag == 0 && name.ends_with(b"/") {
            flag = b'5';
        }
        e.kind = Some(Kind::from_flag(flag));
        e.link = cstr(&blk[157..257]).to_vec();
        if ustar || gnu {
            e.devmajor =
                u32::try_from(num(329..337, "devmajor")?).map_err(|_| corrupt(idx, "devmajor"))?;
            e.devminor =
                u32::try_from(num(337..345, "devminor")?).map_err(|_| corrupt(idx, "devminor"))?;
        }
        if let Some(n) = pending.name {
            name = n;
        }
        if let Some(l) = pending.link {
            e.link = l;
        }
        e.name = name;
        if gnu && flag == b'S' {
            // Old GNU sparse: the map is in the header and its extension blocks.
            let mut map = Vec::new();
            for i in 0..4 {
                let o = 386 + i * 24;
                push_sparse(&mut map, &blk[o..o + 12], &blk[o + 12..o + 24], idx)?;
            }
            let real = num(483..495, "realsize")?;
            let mut extended = blk[482] != 0;
            while extended {
                let mut ext = [0u8; BLOCK];
                if !self.read_block(&mut ext)? {
                    return Err(self.read_err(io::ErrorKind::UnexpectedEof.into()));
                }
                for i in 0..21 {
                    let o = i * 24;
                    push_sparse(&mut map, &ext[o..o + 12], &ext[o + 12..o + 24], idx)?;
                }
                extended = ext[504] != 0;
            }
            e.kind = Some(Kind::Regular);
            e.sparse = Some(Sparse {
                real_size: real,
                map,
            });
        }
        let map_in_data = self.apply_pax(&mut e, pending.pax)?;
        // As Go's archive/tar: header-only types carry no data whatever their size field says.
        self.begin_data(if e.kind().header_only() { 0 } else { e.size });
        if let Some(mut sp) = e.sparse.take() {
            if map_in_data {
                // PAX sparse 1.0: the map is at the start of the data.
                self.sparse_map_in_data(&mut sp)?;
            }
            e.size = self.remaining;
            validate_sparse(&sp, e.size, idx)?;
            e.sparse = Some(sp);
        }
        Ok(e)
    }

    /// Reads a PAX 1.0 sparse map from the start of the data (decimal numbers, one per line,
    /// padded to a block).
    fn sparse_map_in_data(&mut self, sp: &mut Sparse) -> Result<()> {
        let idx = self.index;
        let mut consumed: u64 = 0;
        let mut line = Vec::new();
        let mut nums: Vec<u64> = Vec::new();
        let mut want: Option<u64> = None;
        loop {
            let mut b = [0u8; 1];
            let c = {
                if self.remaining == 0 {
                    return Err(corrupt(idx, "truncated sparse map"));
                }
                if !self.fill()? {
                    return Err(self.read_err(io::ErrorKind::UnexpectedEof.into()));
                }
                b[0] = self.buf[self.pos];
                self.pos += 1;
                self.remaining -= 1;
                consumed += 1;
                b[0]
            };
            if c == b'\n' {
                let n = parse_dec(&line).ok_or_else(|| corrupt(idx, "bad sparse map number"))?;
                line.clear();
                match want {
                    None => {
                        if n > 1 << 20 {
                            return Err(corrupt(idx, "sparse map too large"));
                        }
                        want = Some(n * 2);
                    }
                    Some(_) => nums.push(n),
                }
                if want == Some(nums.len() as u64) {
                    break;
                }
            } else {
                if line.len() > 32 {
                    return Err(corrupt(idx, "bad sparse map number"));
                }
                line.push(c);
            }
        }
        let p = pad(consumed);
        if self.remaining < p {
            return Err(corrupt(idx, "truncated sparse map"));
        }
        self.remaining -= p;
        self.skip(p)?;
        sp.map = nums.chunks(2).map(|c| (c[0], c[1])).collect();
        Ok(())
    }

    /// Merges PAX records into `e`; returns true when a PAX 1.0 sparse map follows in the data.
    fn apply_pax(&self, e: &mut Entry, recs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<bool> {
        let idx = self.index;
        let bad = |k: &[u8]| {
            corrupt(
                idx,
                format!("invalid PAX record {}", short(&String::from_utf8_lossy(k))),
            )
        };
        let mut sparse_major: Option<u64> = None;
        let mut sparse_real: Option<u64> = None;
        let mut sparse_name: Option<Vec<u8>> = None;
        let mut offsets: Vec<u64> = Vec::new();
        let mut lens: Vec<u64> = Vec::new();
        let mut map01: Option<Vec<u64>> = None;
        for (k, v) in recs {
            match k.as_slice() {
                b"path" | b"linkpath" => {
                    if v.contains(&0) {
                        return Err(Error::InvalidName {
                            name: String::from_utf8_lossy(&v).into_owned(),
                            reason: "contains a NUL byte",
                        });
                    }
                    if k == b"path" {
                        e.name = v;
                    } else {
                        e.link = v;
                    }
                }
                b"size" => e.size = parse_dec(&v).ok_or_else(|| bad(&k))?,
                b"uid" => e.uid = parse_dec(&v).ok_or_else(|| bad(&k))?,
                b"gid" => e.gid = parse_dec(&v).ok_or_else(|| bad(&k))?,
                b"mtime" => e.mtime = parse_pax_time(&v).ok_or_else(|| bad(&k))?,
                b"atime" => e.atime = Some(parse_pax_time(&v).ok_or_else(|| bad(&k))?),
                b"GNU.sparse.major" => sparse_major = Some(parse_dec(&v).ok_or_else(|| bad(&k))?),
                b"GNU.sparse.minor" => {}
                b"GNU.sparse.name" => sparse_name = Some(v),
                b"GNU.sparse.size" | b"GNU.sparse.realsize" => {
                    sparse_real = Some(parse_dec(&v).ok_or_else(|| bad(&k))?)
                }
                b"GNU.sparse.offset" => offsets.push(parse_dec(&v).ok_or_else(|| bad(&k))?),
                b"GNU.sparse.numbytes" => lens.push(parse_dec(&v).ok_or_else(|| bad(&k))?),
                b"GNU.sparse.map" => {
                    let mut nums = Vec::new();
                    if !v.is_empty() {
                        for p in v.split(|&b| b == b',') {
                            nums.push(parse_dec(p).ok_or_else(|| bad(&k))?);
                        }
                    }
                    if nums.len() % 2 != 0 {
                        return Err(bad(&k));
                    }
                    map01 = Some(nums);
                }
                _ => {
                    if let Some(x) = k.strip_prefix(b"SCHILY.xattr.") {
                        if x.is_empty() {
                            return Err(bad(&k));
                        }
                        e.xattrs.retain(|(n, _)| n.as_slice() != x);
                        e.xattrs.push((x.to_vec(), v));
                    }
                    // Other records (ctime, uname, gname, comment, ...) are not needed.
                }
            }
        }
        let mut map_in_data = false;
        if let Some(real) = sparse_real {
            map_in_data = sparse_major == Some(1);
            if let Some(n) = sparse_name {
                e.name = n;
            }
            let map = if sparse_major == Some(1) {
                Vec::new()
            } else if let Some(m) = map01 {
                m.chunks(2).map(|c| (c[0], c[1])).collect()
            } else {
                if offsets.len() != lens.len() {
                    return Err(corrupt(idx, "unpaired GNU.sparse.offset/numbytes"));
                }
                offsets.into_iter().zip(lens).collect()
            };
            e.kind = Some(Kind::Regular);
            e.sparse = Some(Sparse {
                real_size: real,
                map,
            });
        }
        Ok(map_in_data)
    }
}

fn push_sparse(map: &mut Vec<(u64, u64)>, off: &[u8], len: &[u8], idx: u64) -> Result<()> {
    if off[0] == 0 && len[0] == 0 {
        return Ok(());
    }
    let o = parse_num(off).ok_or_else(|| corrupt(idx, "bad sparse offset"))?;
    let l = parse_num(len).ok_or_else(|| corrupt(idx, "bad sparse length"))?;
    map.push((o, l));
    Ok(())
}

/// As Go's `validateSparseEntries`: fragments in order, not overlapping, inside the real size,
/// and their lengths sum to the stored data size.
fn validate_sparse(sp: &Sparse, stored: u64, idx: u64) -> Result<()> {
    let mut end = 0u64;
    let mut total = 0u64;
    for &(o, l) in &sp.map {
        let e = o
            .checked_add(l)
            .ok_or_else(|| corrupt(idx, "sparse fragment overflows"))?;
        if o < end || e > sp.real_size {
            return Err(corrupt(
                idx,
                "sparse fragments overlap or exceed the file size",
            ));
        }
        end = e;
        total += l;
    }
    if total != stored {
        return Err(corrupt(
            idx,
            "sparse map does not match the stored data size",
        ));
    }
    Ok(())
}

/// Parses PAX records `LEN key=value\n`.
fn parse_pax(mut data: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        // Trailing NUL padding is tolerated.
        if data.iter().all(|&b| b == 0) {
            break;
        }
        let sp = data.iter().position(|&b| b == b' ')?;
        let len = usize::try_from(parse_dec(&data[..sp])?).ok()?;
        if len <= sp + 1 || len > data.len() {
            return None;
        }
        let rec = &data[sp + 1..len];
        let rec = rec.strip_suffix(b"\n")?;
        let eq = rec.iter().position(|&b| b == b'=')?;
        let key = &rec[..eq];
        if key.is_empty() || key.contains(&0) {
            return None;
        }
        out.push((key.to_vec(), rec[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a whole archive as apply does; `Ok(entries)` at a clean end.
    fn read_all(b: &[u8]) -> Result<u64> {
        let mut r = Reader::new(b);
        let mut n = 0;
        while r.next_entry()?.is_some() {
            while !r.data_chunk()?.is_empty() {}
            n += 1;
        }
        Ok(n)
    }

    /// Where, in a well-formed archive, the input may end after an extended header's data (up
    /// to the next header): Go's reader takes that as a clean end, strata as a cut header.
    fn extended_header_tails(b: &[u8]) -> Vec<std::ops::RangeInclusive<usize>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + BLOCK <= b.len() && b[pos..pos + BLOCK].iter().any(|&x| x != 0) {
            let size = usize::try_from(parse_num(&b[pos + 124..pos + 136]).unwrap()).unwrap();
            let data_end = pos + BLOCK + size;
            let next = data_end + usize::try_from(pad(size as u64)).unwrap();
            if matches!(b[pos + 156], b'x' | b'g' | b'L' | b'K') {
                out.push(data_end..=next);
            }
            pos = next;
        }
        out
    }

    /// Every prefix of an archive written by Go's `archive/tar` gets the verdict Go's reader
    /// gives it (committed by tests/fixtures/go-tar/gen.go), except a stream that stops after
    /// an extended header, which strata refuses as a cut header.
    #[test]
    fn every_cut_of_a_go_archive_gets_go_readers_verdict() {
        let tar = include_bytes!("../../tests/fixtures/go-tar/closed.tar");
        let cuts = include_str!("../../tests/fixtures/go-tar/closed.cuts");
        let tails = extended_header_tails(tar);
        assert!(!tails.is_empty(), "the fixture has PAX headers");
        let mut checked = 0;
        for line in cuts.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let (first, last): (usize, usize) = (f[0].parse().unwrap(), f[1].parse().unwrap());
            for cut in first..=last {
                let ours = read_all(&tar[..cut]);
                let in_tail = tails.iter().any(|t| t.contains(&cut));
                match (f[2], &ours) {
                    ("ok", Ok(n)) if !in_tail => assert_eq!(n.to_string(), f[3], "cut {cut}"),
                    ("ok", Err(Error::Read { source, .. })) if in_tail => {
                        assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof, "cut {cut}");
                    }
                    ("err", Err(e)) => assert!(e.is_corrupt(), "cut {cut}: {e:?}"),
                    _ => panic!("cut {cut}: Go says {line:?}, strata {ours:?}"),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, tar.len() + 1);
    }

    /// A source that hands out at most `chunk` bytes a read and is interrupted before every
    /// read; where the data ends it fails once with `fail` (when given), then reports the end.
    struct Flaky<'a> {
        data: &'a [u8],
        chunk: usize,
        interrupt: bool,
        fail: Option<io::ErrorKind>,
    }

    impl Read for Flaky<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            if self.data.is_empty() {
                return match self.fail.take() {
                    Some(kind) => Err(kind.into()),
                    None => Ok(0),
                };
            }
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Names and data of every entry.
    fn contents(r: &mut Reader<impl Read>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            let mut data = Vec::new();
            loop {
                let c = r.data_chunk()?;
                if c.is_empty() {
                    break;
                }
                data.extend_from_slice(c);
            }
            out.push((e.name, data));
        }
        Ok(out)
    }

    #[test]
    fn interrupted_reads_are_retried_and_other_errors_are_errors() {
        let tar = include_bytes!("../../tests/fixtures/go-tar/closed.tar");
        let want = contents(&mut Reader::new(&tar[..])).unwrap();
        assert!(want.len() > 2);
        // One byte a read, or 700 (blocks then straddle reads at every offset).
        for chunk in [1, 700] {
            let mut flaky = Reader::new(Flaky {
                data: tar,
                chunk,
                interrupt: false,
                fail: None,
            });
            assert_eq!(contents(&mut flaky).unwrap(), want, "{chunk} bytes a read");
            // Entries whose data is never read: it is skipped, across reads.
            let mut skipping = Reader::new(Flaky {
                data: tar,
                chunk,
                interrupt: false,
                fail: None,
            });
            let mut names = Vec::new();
            while let Some(e) = skipping.next_entry().unwrap() {
                names.push(e.name);
            }
            let want_names: Vec<Vec<u8>> = want.iter().map(|(n, _)| n.clone()).collect();
            assert_eq!(names, want_names, "{chunk} bytes a read, data skipped");
        }
        // Inside the archive a read fails: that error, not a retry and not a clean end.
        let mut failing = Reader::new(Flaky {
            data: &tar[..512 * 3 + 100],
            chunk: 700,
            interrupt: false,
            fail: Some(io::ErrorKind::ConnectionReset),
        });
        match contents(&mut failing) {
            Err(Error::Read { source, .. }) => {
                assert_eq!(source.kind(), io::ErrorKind::ConnectionReset);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn extended_header_of_exactly_the_limit_is_read() {
        use crate::tar::writer::{Header, Writer};
        // One PAX record "1048576 SCHILY.xattr.user.k=VVV...\n": 29 bytes plus the value.
        for (extra, ok) in [(0u64, true), (1, false)] {
            let len = usize::try_from(MAX_SPECIAL + extra).unwrap() - 29;
            let xattrs = vec![(b"user.k".to_vec(), vec![b'v'; len])];
            let mut w = Writer::new(Vec::new());
            w.header(&Header {
                name: b"f",
                xattrs: &xattrs,
                ..Header::default()
            })
            .unwrap();
            let tar = w.finish().unwrap();
            assert_eq!(parse_num(&tar[124..136]), Some(MAX_SPECIAL + extra));
            let got = Reader::new(&tar[..]).next_entry();
            if ok {
                assert_eq!(got.unwrap().unwrap().xattrs, xattrs);
            } else {
                assert!(got.unwrap_err().is_corrupt());
            }
        }
    }

    /// A header block: name, octal mode/uid/gid/size/mtime, flag, then `edit` for the rest; the
    /// checksum is the sum of its bytes, unsigned or (as some old tars wrote it) signed.
    fn block(name: &[u8], flag: u8, signed: bool, edit: impl Fn(&mut [u8; BLOCK])) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[..name.len()].copy_from_slice(name);
        b[100..108].copy_from_slice(b"0000644\0");
        b[108..116].copy_from_slice(b"0000000\0");
        b[116..124].copy_from_slice(b"0000000\0");
        b[124..136].copy_from_slice(b"00000000000\0");
        b[136..148].copy_from_slice(b"00000000000\0");
        b[156] = flag;
        edit(&mut b);
        b[148..156].copy_from_slice(b"        ");
        let sum: i64 = if signed {
            b.iter().map(|&c| i64::from(c as i8)).sum()
        } else {
            b.iter().map(|&c| i64::from(c)).sum()
        };
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        b
    }

    fn one_entry(b: &[u8; BLOCK]) -> Result<Entry> {
        let tar = [&b[..], &[0u8; 2 * BLOCK][..]].concat();
        let mut r = Reader::new(&tar[..]);
        let e = r.next_entry()?.expect("an entry");
        assert!(r.next_entry()?.is_none());
        Ok(e)
    }

    #[test]
    fn signed_and_unsigned_checksums_are_accepted() {
        // High bytes make the two sums differ: "é".
        let name = "caf\u{e9}".as_bytes();
        for signed in [false, true] {
            let b = block(name, b'0', signed, |_| {});
            assert_eq!(one_entry(&b).unwrap().name, name, "signed {signed}");
        }
        let mut b = block(name, b'0', true, |_| {});
        b[0] = b'C';
        assert!(one_entry(&b).unwrap_err().is_corrupt());
    }

    #[test]
    fn v7_header_fields_past_the_link_name_are_not_read() {
        // No magic: the bytes where USTAR keeps its version, owner names and device numbers are
        // not interpreted, even when they look like GNU's version or hold garbage.
        let b = block(b"f", b'0', false, |b| {
            b[263..265].copy_from_slice(b" \0");
            b[329..345].copy_from_slice(b"garbage!garbage!");
        });
        let e = one_entry(&b).unwrap();
        assert_eq!(
            (e.name.as_slice(), e.devmajor, e.devminor),
            (&b"f"[..], 0, 0)
        );
        // The same fields under the GNU magic are read.
        let b = block(b"f", b'3', false, |b| {
            b[257..265].copy_from_slice(b"ustar  \0");
            b[329..337].copy_from_slice(b"0000007\0");
            b[337..345].copy_from_slice(b"0000011\0");
        });
        let e = one_entry(&b).unwrap();
        assert_eq!((e.devmajor, e.devminor), (7, 9));
    }

    #[test]
    fn old_gnu_sparse_slot_with_an_empty_offset_field_starts_at_zero() {
        // Slot 0: offset field empty (all NUL, read as 0), length 5; the other slots unused.
        let b = block(b"s", b'S', false, |b| {
            b[124..136].copy_from_slice(b"00000000005\0");
            b[257..265].copy_from_slice(b"ustar  \0");
            b[398..410].copy_from_slice(b"00000000005\0");
            b[483..495].copy_from_slice(b"00000000012\0");
        });
        let mut data = b"hello".to_vec();
        data.resize(BLOCK, 0);
        let tar = [&b[..], &data, &[0u8; 2 * BLOCK][..]].concat();
        let mut r = Reader::new(&tar[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(
            e.sparse,
            Some(Sparse {
                real_size: 10,
                map: vec![(0, 5)]
            })
        );
        assert_eq!(r.data_chunk().unwrap(), b"hello");
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn parse_num_octal_and_base256() {
        assert_eq!(parse_num(b"0000644\0"), Some(0o644));
        assert_eq!(parse_num(b"  755 \0"), Some(0o755));
        assert_eq!(parse_num(b"\0\0\0\0"), Some(0));
        assert_eq!(parse_num(&[0x80, 0, 0, 1, 0]), Some(256));
        assert_eq!(parse_num(b"0009"), None);
    }

    #[test]
    fn parse_pax_time_fraction_and_negative() {
        assert_eq!(
            parse_pax_time(b"12.5"),
            Some(Time {
                secs: 12,
                nanos: 500_000_000
            })
        );
        assert_eq!(
            parse_pax_time(b"-1.25"),
            Some(Time {
                secs: -2,
                nanos: 750_000_000
            })
        );
        assert_eq!(parse_pax_time(b"x"), None);
        // Digits only: no sign other than one leading minus, no empty parts.
        for bad in [
            &b"+5"[..],
            b"-+5",
            b" 5",
            b"5 ",
            b"",
            b".5",
            b"-",
            b"5.+1",
            b"5.x",
        ] {
            assert_eq!(
                parse_pax_time(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_pax_time(b"5."), Some(Time { secs: 5, nanos: 0 }));
        // Digits past nanoseconds are dropped.
        assert_eq!(
            parse_pax_time(b"1.1234567899"),
            Some(Time {
                secs: 1,
                nanos: 123_456_789
            })
        );
        assert_eq!(parse_pax_time(b"-3"), Some(Time { secs: -3, nanos: 0 }));
    }

    #[test]
    fn parse_dec_takes_digits_only() {
        assert_eq!(parse_dec(b"0"), Some(0));
        assert_eq!(parse_dec(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b"+5"[..],
            b"-5",
            b" 5",
            b"",
            b"5x",
            b"18446744073709551616",
        ] {
            assert_eq!(parse_dec(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn parse_pax_records_and_garbage() {
        let r = parse_pax(b"11 path=ab\n19 SCHILY.xattr.a=\n").unwrap();
        assert_eq!(r[0], (b"path".to_vec(), b"ab".to_vec()));
        assert_eq!(r[1], (b"SCHILY.xattr.a".to_vec(), b"".to_vec()));
        assert!(parse_pax(b"99 path=ab\n").is_none());
        assert!(parse_pax(b"5 a=b\n").is_none());
        // A length that does not even cover "LEN ": malformed, not a slice out of range.
        assert!(parse_pax(b"1 k=v\n").is_none());
        assert!(parse_pax(b"2 k=v\n").is_none());
        // An empty key, or one with a NUL.
        assert!(parse_pax(b"7 =abc\n").is_none());
        assert!(parse_pax(b"11 k\0y=abc\n").is_none());
        assert!(parse_pax(b"10 ky=abc\n").is_some());
    }
}
