//! A read-only reader of bbolt files, the embedded key/value store BuildKit (inside dockerd)
//! keeps its cache metadata in. Only what is reachable from the newest valid meta page is read:
//! pages freed by earlier transactions (which may still hold ids of snapshots long gone) are not.
//!
//! The format, as far as this reader needs it: the file is a sequence of pages of one size. Pages
//! 0 and 1 are meta pages (a magic number, the page size, the root bucket's page, a transaction
//! id and an FNV-1a checksum); the valid one with the higher transaction id is current. Every
//! other page starts with a 16-byte header (id, flags, element count, overflow page count) and is
//! a branch page (16-byte elements: key offset, key size, child page) or a leaf page (16-byte
//! elements: flags, key offset, key size, value size; offsets count from the element itself). A
//! leaf element flagged as a bucket holds a 16-byte bucket header (root page, sequence); a root
//! page of 0 means the bucket's own leaf page follows the header inline, inside the value.

use std::collections::HashSet;

const MAGIC: u32 = 0xED0C_DAED;
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BUCKET_HEADER: usize = 16;
const META_LEN: usize = 64;
const FLAG_BRANCH: u16 = 0x01;
const FLAG_LEAF: u16 = 0x02;
const FLAG_META: u16 = 0x04;
const BUCKET_LEAF: u32 = 0x01;
/// Deeper than any real tree (a B+tree of 2^64 pages with fan-out 2 is 64 deep), so a cycle
/// in a damaged file ends here.
const MAX_DEPTH: usize = 128;

/// Why a file could not be read as a bbolt database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a readable bbolt database: {0}")]
pub struct BoltError(pub String);

/// Whether `data` starts like a bbolt file (a meta page with the magic number).
pub fn looks_like_bolt(data: &[u8]) -> bool {
    u32_at(data, PAGE_HEADER) == Some(MAGIC)
}

/// One key (and its value, `None` for a bucket) reachable in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    /// Names of the enclosing buckets, outermost first.
    pub buckets: Vec<&'a [u8]>,
    /// The key.
    pub key: &'a [u8],
    /// The value; `None` when the key names a nested bucket.
    pub value: Option<&'a [u8]>,
}

/// Every key and value reachable from the current meta page, depth first.
///
/// # Errors
/// No valid meta page, or a page reference, element or length that points outside the file.
pub fn items(data: &[u8]) -> Result<Vec<Item<'_>>, BoltError> {
    let (page_size, root) = current_meta(data)?;
    let mut r = Reader {
        data,
        page_size,
        out: Vec::new(),
        visiting: HashSet::new(),
    };
    r.bucket_page(root, &mut Vec::new(), 0)?;
    Ok(r.out)
}

/// All reachable keys and values, each followed by a NUL byte, so that a search never matches
/// across two of them.
///
/// # Errors
/// As [`items`].
pub fn live_bytes(data: &[u8]) -> Result<Vec<u8>, BoltError> {
    let mut out = Vec::new();
    for item in items(data)? {
        out.extend_from_slice(item.key);
        out.push(0);
        if let Some(v) = item.value {
            out.extend_from_slice(v);
            out.push(0);
        }
    }
    Ok(out)
}

fn bad(what: impl Into<String>) -> BoltError {
    BoltError(what.into())
}

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

/// 64-bit FNV-1a, bbolt's meta checksum.
pub(crate) fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A meta page at `offset`: (page size, root page, txid) when it is valid.
fn meta_at(data: &[u8], offset: usize) -> Option<(usize, u64, u64)> {
    let flags = u16_at(data, offset + 8)?;
    if flags & FLAG_META == 0 {
        return None;
    }
    let m = data.get(offset + PAGE_HEADER..offset + PAGE_HEADER + META_LEN)?;
    if u32_at(m, 0)? != MAGIC || u32_at(m, 4)? != 2 {
        return None;
    }
    if fnv1a64(&m[..56]) != u64_at(m, 56)? {
        return None;
    }
    let page_size = usize::try_from(u32_at(m, 8)?).ok()?;
    if !(512..=1 << 20).contains(&page_size) {
        return None;
    }
    Some((page_size, u64_at(m, 16)?, u64_at(m, 48)?))
}

fn current_meta(data: &[u8]) -> Result<(usize, u64), BoltError> {
    let first = meta_at(data, 0);
    // The second meta page sits one page in; its size comes from the first meta page, or, when
    // that one is damaged, from the sizes bbolt uses in practice.
    let sizes: Vec<usize> = match first {
        Some((ps, _, _)) => vec![ps],
        None => vec![4096, 16384, 65536],
    };
    let second = sizes.iter().find_map(|&ps| meta_at(data, ps));
    let best = match (first, second) {
        (Some(a), Some(b)) => Some(if b.2 > a.2 { b } else { a }),
        (a, b) => a.or(b),
    };
    best.map(|(ps, root, _)| (ps, root))
        .ok_or_else(|| bad("no valid meta page"))
}

struct Reader<'a> {
    data: &'a [u8],
    page_size: usize,
    out: Vec<Item<'a>>,
    visiting: HashSet<u64>,
}

impl<'a> Reader<'a> {
    /// The bytes of page `id`, overflow pages included.
    fn page(&self, id: u64) -> Result<&'a [u8], BoltError> {
        let start = usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_mul(self.page_size))
            .ok_or_else(|| bad(format!("page {id} is out of range")))?;
        let overflow = u32_at(self.data, start + 12)
            .ok_or_else(|| bad(format!("page {id} lies past the end of the file")))?;
        let len = (overflow as usize + 1)
            .checked_mul(self.page_size)
            .ok_or_else(|| bad(format!("page {id} has an impossible overflow count")))?;
        self.data
            .get(start..start.saturating_add(len))
            .ok_or_else(|| bad(format!("page {id} lies past the end of the file")))
    }

    /// Walks the tree of a bucket whose root is page `id`.
    fn bucket_page(
        &mut self,
        id: u64,
        path: &mut Vec<&'a [u8]>,
        depth: usize,
    ) -> Result<(), BoltError> {
        if depth > MAX_DEPTH || !self.visiting.insert(id) {
            return Err(bad(format!("page {id} is part of a cycle")));
        }
        let page = self.page(id)?;
        self.node(page, path, depth)?;
        self.visiting.remove(&id);
        Ok(())
    }

    /// A branch or leaf page (also an inline bucket's page, a slice of its parent's value).
    fn node(
        &mut self,
        page: &'a [u8],
        path: &mut Vec<&'a [u8]>,
        depth: usize,
    ) -> Result<(), BoltError> {
        let flags = u16_at(page, 8).ok_or_else(|| bad("truncated page header"))?;
        let count = usize::from(u16_at(page, 10).ok_or_else(|| bad("truncated page header"))?);
        let short = || bad("an element lies outside its page");
        if flags & FLAG_BRANCH != 0 {
            for i in 0..count {
                let e = PAGE_HEADER + i * ELEMENT;
                let child = u64_at(page, e + 8).ok_or_else(short)?;
                self.bucket_page(child, path, depth + 1)?;
            }
            Ok(())
        } else if flags & FLAG_LEAF != 0 {
            for i in 0..count {
                let e = PAGE_HEADER + i * ELEMENT;
                let eflags = u32_at(page, e).ok_or_else(short)?;
                let pos = u32_at(page, e + 4).ok_or_else(short)? as usize;
                let ksize = u32_at(page, e + 8).ok_or_else(short)? as usize;
                let vsize = u32_at(page, e + 12).ok_or_else(short)? as usize;
                let kstart = e.checked_add(pos).ok_or_else(short)?;
                let key = page
                    .get(kstart..kstart.saturating_add(ksize))
                    .ok_or_else(short)?;
                let vstart = kstart + ksize;
                let value = page
                    .get(vstart..vstart.saturating_add(vsize))
                    .ok_or_else(short)?;
                if eflags & BUCKET_LEAF != 0 {
                    self.out.push(Item {
                        buckets: path.clone(),
                        key,
                        value: None,
                    });
                    let root = u64_at(value, 0).ok_or_else(short)?;
                    path.push(key);
                    if root == 0 {
                        if depth > MAX_DEPTH {
                            return Err(bad("inline buckets nested too deep"));
                        }
                        self.node(&value[BUCKET_HEADER.min(value.len())..], path, depth + 1)?;
                    } else {
                        self.bucket_page(root, path, depth + 1)?;
                    }
                    path.pop();
                } else {
                    self.out.push(Item {
                        buckets: path.clone(),
                        key,
                        value: Some(value),
                    });
                }
            }
            Ok(())
        } else {
            Err(bad(format!(
                "a page with flags {flags:#x} where a branch or leaf page belongs"
            )))
        }
    }
}

/// Writes small bbolt files for tests: meta pages, an empty freelist, one leaf page (or a
/// branch over two leaves) per bucket, inline buckets, and stray pages no tree reaches.
#[cfg(test)]
pub(crate) mod testdb {
    use super::*;

    const PS: usize = 4096;

    /// How a bucket is stored.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Shape {
        /// One leaf page of its own.
        Leaf,
        /// A branch page over two leaf pages.
        Split,
        /// Inline in its parent's leaf.
        Inline,
    }

    /// A bucket: name, key/value pairs, how it is stored.
    pub type Bucket<'a> = (&'a [u8], Vec<(&'a [u8], &'a [u8])>, Shape);

    fn header(page: &mut [u8], id: u64, flags: u16, count: usize) {
        page[0..8].copy_from_slice(&id.to_le_bytes());
        page[8..10].copy_from_slice(&flags.to_le_bytes());
        page[10..12].copy_from_slice(&(count as u16).to_le_bytes());
    }

    /// A leaf page body (header id 0) holding `elems` of (flags, key, value).
    pub fn leaf(elems: &[(u32, &[u8], Vec<u8>)], len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        header(&mut p, 0, FLAG_LEAF, elems.len());
        let mut data = PAGE_HEADER + elems.len() * ELEMENT;
        for (i, (f, k, v)) in elems.iter().enumerate() {
            let e = PAGE_HEADER + i * ELEMENT;
            p[e..e + 4].copy_from_slice(&f.to_le_bytes());
            p[e + 4..e + 8].copy_from_slice(&((data - e) as u32).to_le_bytes());
            p[e + 8..e + 12].copy_from_slice(&(k.len() as u32).to_le_bytes());
            p[e + 12..e + 16].copy_from_slice(&(v.len() as u32).to_le_bytes());
            p[data..data + k.len()].copy_from_slice(k);
            data += k.len();
            p[data..data + v.len()].copy_from_slice(v);
            data += v.len();
        }
        assert!(data <= len, "test page overflows");
        p
    }

    fn meta(txid: u64, root: u64, high: u64) -> Vec<u8> {
        let mut p = vec![0u8; PS];
        header(&mut p, 0, FLAG_META, 0);
        let m = &mut p[PAGE_HEADER..PAGE_HEADER + META_LEN];
        m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        m[4..8].copy_from_slice(&2u32.to_le_bytes());
        m[8..12].copy_from_slice(&(PS as u32).to_le_bytes());
        m[16..24].copy_from_slice(&root.to_le_bytes());
        m[32..40].copy_from_slice(&2u64.to_le_bytes());
        m[40..48].copy_from_slice(&high.to_le_bytes());
        m[48..56].copy_from_slice(&txid.to_le_bytes());
        let sum = fnv1a64(&m[..56]);
        m[56..64].copy_from_slice(&sum.to_le_bytes());
        p
    }

    fn bucket_value(root: u64, inline: Option<Vec<u8>>) -> Vec<u8> {
        let mut v = vec![0u8; BUCKET_HEADER];
        v[0..8].copy_from_slice(&root.to_le_bytes());
        if let Some(page) = inline {
            v.extend_from_slice(&page);
        }
        v
    }

    /// A database holding `buckets` at the top level, followed by `stray` pages (leaf pages
    /// that no tree reaches, as freed pages are).
    pub fn build(buckets: &[Bucket<'_>], stray: &[&[u8]]) -> Vec<u8> {
        let mut pages: Vec<Vec<u8>> = vec![Vec::new(), Vec::new(), vec![0u8; PS]];
        header(&mut pages[2], 2, 0x10, 0);
        pages.push(Vec::new()); // 3: the root leaf, written last
        let mut root_elems = Vec::new();
        for (name, kvs, shape) in buckets {
            let elems: Vec<(u32, &[u8], Vec<u8>)> =
                kvs.iter().map(|(k, v)| (0, *k, v.to_vec())).collect();
            let value = match shape {
                Shape::Inline => {
                    let len = PAGE_HEADER
                        + elems.len() * ELEMENT
                        + elems.iter().map(|e| e.1.len() + e.2.len()).sum::<usize>();
                    bucket_value(0, Some(leaf(&elems, len)))
                }
                Shape::Leaf => {
                    let id = pages.len() as u64;
                    let mut p = leaf(&elems, PS);
                    p[0..8].copy_from_slice(&id.to_le_bytes());
                    pages.push(p);
                    bucket_value(id, None)
                }
                Shape::Split => {
                    let branch_id = pages.len() as u64;
                    pages.push(Vec::new());
                    let half = elems.len() / 2;
                    let mut children = Vec::new();
                    for part in [&elems[..half], &elems[half..]] {
                        let id = pages.len() as u64;
                        let mut p = leaf(part, PS);
                        p[0..8].copy_from_slice(&id.to_le_bytes());
                        pages.push(p);
                        children.push((id, part.first().map_or(&b""[..], |e| e.1)));
                    }
                    let mut b = vec![0u8; PS];
                    header(&mut b, branch_id, FLAG_BRANCH, children.len());
                    let mut data = PAGE_HEADER + children.len() * ELEMENT;
                    for (i, (id, k)) in children.iter().enumerate() {
                        let e = PAGE_HEADER + i * ELEMENT;
                        b[e..e + 4].copy_from_slice(&((data - e) as u32).to_le_bytes());
                        b[e + 4..e + 8].copy_from_slice(&(k.len() as u32).to_le_bytes());
                        b[e + 8..e + 16].copy_from_slice(&id.to_le_bytes());
                        b[data..data + k.len()].copy_from_slice(k);
                        data += k.len();
                    }
                    pages[branch_id as usize] = b;
                    bucket_value(branch_id, None)
                }
            };
            root_elems.push((BUCKET_LEAF, *name, value));
        }
        let mut root = leaf(&root_elems, PS);
        root[0..8].copy_from_slice(&3u64.to_le_bytes());
        pages[3] = root;
        for s in stray {
            let id = pages.len() as u64;
            let mut p = leaf(&[(0, s, b"x".to_vec())], PS);
            p[0..8].copy_from_slice(&id.to_le_bytes());
            pages.push(p);
        }
        let high = pages.len() as u64;
        pages[0] = meta(4, 3, high);
        pages[1] = meta(5, 3, high);
        pages[1][0..8].copy_from_slice(&1u64.to_le_bytes());
        pages.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::testdb::{build, Shape};
    use super::*;

    fn keys(data: &[u8]) -> Vec<(Vec<String>, String, Option<String>)> {
        items(data)
            .unwrap()
            .into_iter()
            .map(|i| {
                (
                    i.buckets
                        .iter()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .collect(),
                    String::from_utf8_lossy(i.key).into_owned(),
                    i.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn reads_leaf_split_and_inline_buckets() {
        let db = build(
            &[
                (b"a", vec![(b"k1", b"v1"), (b"k2", b"v2")], Shape::Leaf),
                (
                    b"b",
                    vec![(b"x1", b"y1"), (b"x2", b"y2"), (b"x3", b"y3")],
                    Shape::Split,
                ),
                (b"c", vec![(b"in", b"line")], Shape::Inline),
            ],
            &[],
        );
        assert!(looks_like_bolt(&db));
        let got = keys(&db);
        let s = |x: &str| x.to_owned();
        assert_eq!(
            got,
            vec![
                (vec![], s("a"), None),
                (vec![s("a")], s("k1"), Some(s("v1"))),
                (vec![s("a")], s("k2"), Some(s("v2"))),
                (vec![], s("b"), None),
                (vec![s("b")], s("x1"), Some(s("y1"))),
                (vec![s("b")], s("x2"), Some(s("y2"))),
                (vec![s("b")], s("x3"), Some(s("y3"))),
                (vec![], s("c"), None),
                (vec![s("c")], s("in"), Some(s("line"))),
            ]
        );
    }

    #[test]
    fn stray_pages_are_not_live() {
        let db = build(
            &[(b"a", vec![(b"k", b"live-id")], Shape::Leaf)],
            &[b"freed-id"],
        );
        let live = live_bytes(&db).unwrap();
        assert!(memchr::memmem::find(&live, b"live-id").is_some());
        assert!(memchr::memmem::find(&live, b"freed-id").is_none());
        // The raw file does hold it: a byte scan alone would keep the freed id alive.
        assert!(memchr::memmem::find(&db, b"freed-id").is_some());
    }

    #[test]
    fn newest_valid_meta_wins_and_a_bad_checksum_is_skipped() {
        let mut db = build(&[(b"a", vec![(b"k", b"v")], Shape::Leaf)], &[]);
        assert!(items(&db).is_ok());
        // Break the second meta's checksum: the first one still reads.
        db[4096 + PAGE_HEADER + 56] ^= 0xff;
        assert_eq!(keys(&db).len(), 2);
        // Both broken: no valid meta page.
        db[PAGE_HEADER + 56] ^= 0xff;
        assert!(items(&db).unwrap_err().0.contains("meta"));
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let db = build(
            &[(b"a", vec![(b"k", b"v"), (b"k2", b"v2")], Shape::Split)],
            &[],
        );
        for cut in [100, 4096, 4096 * 4 + 10, db.len() - 1] {
            let _ = items(&db[..cut]);
        }
        // A branch pointing at itself.
        let mut cyc = db.clone();
        let branch = 4 * 4096;
        cyc[branch + PAGE_HEADER + 8..branch + PAGE_HEADER + 16]
            .copy_from_slice(&4u64.to_le_bytes());
        assert!(items(&cyc).is_err());
        // An element offset past the page.
        let mut off = db.clone();
        let leaf = 5 * 4096;
        off[leaf + PAGE_HEADER + 4..leaf + PAGE_HEADER + 8]
            .copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(items(&off).is_err());
        assert!(!looks_like_bolt(b"hello"));
        assert!(items(b"").is_err());
    }
}
