//! The image archive parsers (strata-image: docker-save `manifest.json` and configs, OCI
//! `oci-layout`, `index.json`, nested indexes and manifests) and the loader above them, on an
//! archive built from the input, loaded into an in-memory store.
//!
//! The input is a list of files, each introduced by a line `=== NAME` (see fuzz/seeds/
//! image_archive), packed into a tar; so the fuzzer mutates JSON rather than tar headers. In
//! names and contents, `@hex(NAME)`, `@diffhex(NAME)` and `@size(NAME)` expand to the sha256 of
//! file NAME (its raw name, as after `=== `) as stored, of NAME decompressed, and NAME's
//! length, so mutated documents can still name valid digests; in a name, `@hex(.)` is the
//! file's own hash (`blobs/sha256/@hex(.)`), and a `#label` at its end only tells files apart. Properties: no panic; a failed load leaves no layer that was not applied
//! to the end; a successful load's layers are all in the store.
#![no_main]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{BufReader, Read};

use libfuzzer_sys::fuzz_target;
use strata::LayerId;
use strata_image::{Archive, Digest, LayerStore, NoProgress};

/// Largest layer tar the fake store reads (a small blob can decompress to gigabytes).
const LAYER_CAP: u64 = 4 << 20;

fn sections(data: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut rest = data;
    while let Some(pos) = find_marker(rest) {
        if let Some(last) = out.last_mut() {
            last.1 = rest[..pos.saturating_sub(1)].to_vec();
        }
        let after = &rest[pos + 4..];
        let end = after
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(after.len());
        out.push((after[..end].to_vec(), Vec::new()));
        rest = &after[(end + 1).min(after.len())..];
    }
    if let Some(last) = out.last_mut() {
        last.1 = rest.to_vec();
    }
    out
}

/// Offset of the next `=== ` at the start of a line.
fn find_marker(b: &[u8]) -> Option<usize> {
    if b.starts_with(b"=== ") {
        return Some(0);
    }
    b.windows(5).position(|w| w == b"\n=== ").map(|p| p + 1)
}

/// Token values already computed, by token and raw name: a layer is decompressed once.
type Memo = RefCell<BTreeMap<(Vec<u8>, Vec<u8>), String>>;

struct Files<'a> {
    raw: &'a [(Vec<u8>, Vec<u8>)],
    memo: Memo,
}

/// Where the `)` closing a token that starts at `b[0]` (after its `(`) is, nesting counted.
fn closing(b: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'(' => depth += 1,
            b')' if depth == 0 => return Some(i),
            b')' => depth -= 1,
            _ => {}
        }
    }
    None
}

impl Files<'_> {
    /// The expanded content of the file whose raw name is `name`.
    fn content(&self, name: &[u8], depth: usize) -> Option<Vec<u8>> {
        let (_, c) = self.raw.iter().find(|(n, _)| n == name)?;
        Some(self.expand(c, depth + 1, None))
    }

    /// Replaces the `@fn(NAME)` tokens of `b`; `@hex(.)` is the hash of `this` (a file's own
    /// content, in its name). Tokens nested too deep or naming no file stay as they are.
    fn expand(&self, b: &[u8], depth: usize, this: Option<&[u8]>) -> Vec<u8> {
        if depth > 6 {
            return b.to_vec();
        }
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let rest = &b[i..];
            let token = [&b"@hex("[..], b"@diffhex(", b"@size("]
                .into_iter()
                .find(|t| rest.starts_with(t));
            if let Some(t) = token {
                if let Some(close) = closing(&rest[t.len()..]) {
                    let name = &rest[t.len()..t.len() + close];
                    let key = (t.to_vec(), name.to_vec());
                    let memo = (name != b".")
                        .then(|| self.memo.borrow().get(&key).cloned())
                        .flatten();
                    let value = memo.or_else(|| {
                        let v = match (name, this) {
                            (b".", Some(own)) => Some(own.to_vec()),
                            _ => self.content(name, depth),
                        }?;
                        let s = match t {
                            b"@hex(" => Digest::of(&v).hex().to_owned(),
                            b"@size(" => v.len().to_string(),
                            _ => diff_hex(&v),
                        };
                        if name != b"." {
                            self.memo.borrow_mut().insert(key, s.clone());
                        }
                        Some(s)
                    });
                    if let Some(s) = value {
                        out.extend_from_slice(s.as_bytes());
                        i += t.len() + close + 1;
                        continue;
                    }
                }
            }
            out.push(b[i]);
            i += 1;
        }
        out
    }
}

fn diff_hex(blob: &[u8]) -> String {
    let mut tar = Vec::new();
    if let Ok((_, mut d)) = strata_image::compression::decompress(BufReader::new(blob)) {
        let _ = (&mut d).take(LAYER_CAP).read_to_end(&mut tar);
    }
    Digest::of(&tar).hex().to_owned()
}

fn build(data: &[u8]) -> Vec<u8> {
    let raw = sections(data);
    let files = Files {
        raw: &raw,
        memo: RefCell::default(),
    };
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in &raw {
        let content = files.expand(content, 0, None);
        // A `#label` ends a raw name only to tell files apart.
        let bare = name.split(|&c| c == b'#').next().unwrap_or_default();
        let name = files.expand(bare, 0, Some(&content));
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let Ok(name) = std::str::from_utf8(&name) else {
            continue;
        };
        if b.append_data(&mut h, name, &content[..]).is_err() {
            continue;
        }
    }
    b.into_inner().unwrap_or_default()
}

/// The store: which layers exist and whether each was applied to the end.
#[derive(Default)]
struct MemStore {
    layers: RefCell<BTreeMap<LayerId, bool>>,
}

impl LayerStore for MemStore {
    fn exists(&self, id: &LayerId) -> bool {
        self.layers.borrow().contains_key(id)
    }
    fn create(&self, id: &LayerId, parent: Option<&LayerId>) -> strata::Result<()> {
        if let Some(p) = parent {
            assert_eq!(
                self.layers.borrow().get(p),
                Some(&true),
                "parent {p} not loaded"
            );
        }
        let mut l = self.layers.borrow_mut();
        if l.contains_key(id) {
            return Err(strata::Error::LayerExists { id: id.to_string() });
        }
        l.insert(id.clone(), false);
        Ok(())
    }
    fn apply_diff(
        &self,
        id: &LayerId,
        _parent: Option<&LayerId>,
        _fill: Option<&strata::FillGuard>,
        tar: &mut dyn Read,
    ) -> strata::Result<u64> {
        let n = std::io::copy(&mut tar.take(LAYER_CAP + 1), &mut std::io::sink()).map_err(
            |source| strata::Error::Io {
                op: "read layer tar",
                path: id.to_string().into(),
                source,
            },
        )?;
        if n > LAYER_CAP {
            return Err(strata::Error::Io {
                op: "read layer tar (over the fuzz cap)",
                path: id.to_string().into(),
                source: std::io::ErrorKind::FileTooLarge.into(),
            });
        }
        self.layers.borrow_mut().insert(id.clone(), true);
        Ok(n)
    }
    fn remove(&self, id: &LayerId) -> strata::Result<()> {
        self.layers.borrow_mut().remove(id);
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let tar = build(data);
    let spool = tempfile::tempdir().expect("spool dir");
    let debug = std::env::var_os("STRATA_FUZZ_DEBUG").is_some();
    let archive = match Archive::from_reader("fuzz.tar", &tar[..], spool.path()) {
        Ok(a) => a,
        Err(e) => {
            if debug {
                eprintln!("open: {e:#?}");
            }
            return;
        }
    };
    let store = MemStore::default();
    let loaded = archive.load(&store, &mut NoProgress);
    if debug {
        eprintln!("plans: {:#?}\nload: {loaded:#?}", archive.images());
    }
    for (id, complete) in store.layers.borrow().iter() {
        assert!(complete, "layer {id} left half-loaded (load: {loaded:?})");
    }
    if let Ok(images) = loaded {
        assert_eq!(images.len(), archive.images().len());
        for l in images.iter().flat_map(|i| &i.layers) {
            assert!(
                store.exists(&l.id),
                "loaded layer {} is not in the store",
                l.id
            );
        }
    }
});
