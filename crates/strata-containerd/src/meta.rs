//! The snapshotter's metadata: an embedded transactional database (redb: pure Rust, ACID,
//! copy-on-write pages, every commit durable) at `<home>/.strata/containerd/metadata.redb`.
//!
//! Tables:
//! - `snapshots`: key or name → [`Record`] (layer, kind, parent, labels, times, usage);
//! - `children`: `"<parent>\0<child>"` → (), so Remove asks "has it children?" with one range
//!   read;
//! - `layers`: layer id → [`Journal`], what the snapshotter is doing with each of its layers.
//!   An entry is written *before* the filesystem is touched (Creating, Removing, Rebasing) and
//!   settled after, so after a kill -9 the journal names every layer that may be half made or
//!   half removed, and `reclaim` puts it right. A snapshot record is only written once its
//!   layer is complete: no half snapshot is ever visible;
//! - `refs`: `"<parent>\0<ref>\0<name>"` → () for each committed snapshot labelled
//!   `containerd.io/snapshot.ref`, so that the unpacker's Prepare of a known layer is answered
//!   with one range read, not a scan;
//! - `counter`: the next layer number (layer ids are `snap-<n>`, never derived from keys).
//!
//! This module never touches the layer store; `snapshotter.rs` sequences the two.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
const CHILDREN: TableDefinition<&str, ()> = TableDefinition::new("children");
const LAYERS: TableDefinition<&str, &[u8]> = TableDefinition::new("layers");
const COUNTER: TableDefinition<&str, u64> = TableDefinition::new("counter");
const REFS: TableDefinition<&str, ()> = TableDefinition::new("refs");

/// Where the metadata lives inside the home.
pub const META_DIR: &str = ".strata/containerd";
/// The database file's name in [`META_DIR`].
pub const META_FILE: &str = "metadata.redb";

/// What a snapshot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Read-only, mountable, cannot be committed.
    View,
    /// Writable, mountable, can be committed.
    Active,
    /// Immutable, a parent for others.
    Committed,
}

impl Kind {
    /// containerd's name for the kind in filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::View => "view",
            Kind::Active => "active",
            Kind::Committed => "committed",
        }
    }
}

/// A point in time, as nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Time {
    /// Seconds since the epoch.
    pub secs: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl Time {
    /// Now.
    pub fn now() -> Time {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Time {
            secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: d.subsec_nanos(),
        }
    }
}

/// Disk usage of a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Bytes of disk.
    pub size: u64,
    /// Inodes.
    pub inodes: u64,
}

/// One snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The strata layer holding its files.
    pub layer: String,
    /// Its kind.
    pub kind: Kind,
    /// The key of its parent (a committed snapshot).
    pub parent: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time.
    pub created: Time,
    /// Last change of the record.
    pub updated: Time,
    /// Usage measured at commit (committed snapshots only).
    pub usage: Option<Usage>,
}

/// What the snapshotter is doing with one of its layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum Journal {
    /// Being created for `key`; its record is not written yet.
    Creating {
        /// The snapshot key.
        key: String,
    },
    /// Complete; held by snapshot `key`.
    Live {
        /// The snapshot key or name.
        key: String,
    },
    /// Its snapshot record is gone; the layer is being deleted.
    Removing {
        /// The key it had.
        key: String,
    },
    /// Being put on a parent during the commit of `key` (containerd's rebase).
    Rebasing {
        /// The active snapshot's key.
        key: String,
    },
}

/// The metadata database.
#[derive(Debug)]
pub struct Meta {
    db: redb::Database,
    path: PathBuf,
}

fn child_key(parent: &str, child: &str) -> String {
    format!("{parent}\0{child}")
}

/// The `refs` entry of a record, if it has one.
fn ref_key(key: &str, rec: &Record) -> Option<String> {
    if rec.kind != Kind::Committed {
        return None;
    }
    let r = rec.labels.get(crate::LABEL_SNAPSHOT_REF)?;
    Some(format!(
        "{}\0{r}\0{key}",
        rec.parent.as_deref().unwrap_or("")
    ))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("metadata records always serialise")
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::MetaCorrupt {
        key: key.to_owned(),
        what: e.to_string(),
    })
}

macro_rules! m {
    ($op:literal, $e:expr) => {
        $e.map_err(|e| Error::meta($op)(e.into()))?
    };
}

/// A write transaction with the tables open.
pub struct Tx<'a> {
    snapshots: redb::Table<'a, &'static str, &'static [u8]>,
    children: redb::Table<'a, &'static str, ()>,
    layers: redb::Table<'a, &'static str, &'static [u8]>,
    counter: redb::Table<'a, &'static str, u64>,
    refs: redb::Table<'a, &'static str, ()>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

impl Tx<'_> {
    /// The record of `key`.
    pub fn get(&self, key: &str) -> Result<Option<Record>> {
        match m!("read snapshot", self.snapshots.get(key)) {
            Some(v) => Ok(Some(decode(key, v.value())?)),
            None => Ok(None),
        }
    }

    /// Writes the record of `key` (and its place among its parent's children).
    pub fn put(&mut self, key: &str, rec: &Record) -> Result<()> {
        let old = self.get(key)?;
        if let Some(r) = old.as_ref().and_then(|o| ref_key(key, o)) {
            m!("unlink ref", self.refs.remove(r.as_str()));
        }
        if let Some(r) = ref_key(key, rec) {
            m!("link ref", self.refs.insert(r.as_str(), ()));
        }
        if let Some(p) = old.as_ref().and_then(|o| o.parent.as_deref()) {
            m!(
                "unlink child",
                self.children.remove(child_key(p, key).as_str())
            );
        }
        if let Some(p) = &rec.parent {
            m!(
                "link child",
                self.children.insert(child_key(p, key).as_str(), ())
            );
        }
        m!(
            "write snapshot",
            self.snapshots.insert(key, encode(rec).as_slice())
        );
        Ok(())
    }

    /// Deletes the record of `key`.
    pub fn delete(&mut self, key: &str) -> Result<Option<Record>> {
        let old = self.get(key)?;
        if let Some(o) = &old {
            if let Some(r) = ref_key(key, o) {
                m!("unlink ref", self.refs.remove(r.as_str()));
            }
            if let Some(p) = &o.parent {
                m!(
                    "unlink child",
                    self.children.remove(child_key(p, key).as_str())
                );
            }
            m!("delete snapshot", self.snapshots.remove(key));
        }
        Ok(old)
    }

    /// Whether any snapshot names `key` as its parent.
    pub fn has_children(&self, key: &str) -> Result<bool> {
        let lo = format!("{key}\0");
        let hi = format!("{key}\u{1}");
        let mut it = m!(
            "read children",
            self.children.range(lo.as_str()..hi.as_str())
        );
        Ok(it.next().is_some())
    }

    /// A fresh layer number.
    pub fn next_layer(&mut self) -> Result<String> {
        let n = m!("read counter", self.counter.get("layer")).map_or(1, |v| v.value());
        m!("write counter", self.counter.insert("layer", n + 1));
        Ok(format!("snap-{n}"))
    }

    /// Sets the journal entry of `layer`.
    pub fn journal(&mut self, layer: &str, j: &Journal) -> Result<()> {
        m!(
            "write journal",
            self.layers.insert(layer, encode(j).as_slice())
        );
        Ok(())
    }

    /// Drops the journal entry of `layer`.
    pub fn forget(&mut self, layer: &str) -> Result<()> {
        m!("delete journal", self.layers.remove(layer));
        Ok(())
    }

    /// The journal entry of `layer`.
    pub fn journal_of(&self, layer: &str) -> Result<Option<Journal>> {
        match m!("read journal", self.layers.get(layer)) {
            Some(v) => Ok(Some(decode(layer, v.value())?)),
            None => Ok(None),
        }
    }

    /// Whether a committed snapshot on `parent` has the name `target` or carries it in its
    /// `containerd.io/snapshot.ref` label (two point reads).
    pub fn find_committed_ref(&self, target: &str, parent: Option<&str>) -> Result<bool> {
        if let Some(rec) = self.get(target)? {
            if rec.kind == Kind::Committed && rec.parent.as_deref() == parent {
                return Ok(true);
            }
        }
        let lo = format!("{}\0{target}\0", parent.unwrap_or(""));
        let hi = format!("{}\0{target}\u{1}", parent.unwrap_or(""));
        let mut it = m!("read refs", self.refs.range(lo.as_str()..hi.as_str()));
        Ok(it.next().is_some())
    }
}

impl Meta {
    /// Opens (creating) the database of the home at `home`.
    ///
    /// # Errors
    /// [`Error::MetaInUse`] when another process holds it; a database error.
    pub fn open(home: &Path) -> Result<Meta> {
        let dir = home.join(META_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Usage {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(META_FILE);
        let db = match redb::Database::create(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(Error::MetaInUse { path });
            }
            Err(e) => return Err(Error::meta("open the database")(e.into())),
        };
        let meta = Meta { db, path };
        // Create the tables so that read transactions find them.
        meta.write(|_| Ok(()))?;
        Ok(meta)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one write transaction and commits it when `f` succeeds.
    ///
    /// # Errors
    /// `f`'s error (nothing is committed), or a database error.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let txn = m!("begin a write", self.db.begin_write());
        let out = {
            let mut tx = Tx {
                snapshots: m!("open table", txn.open_table(SNAPSHOTS)),
                children: m!("open table", txn.open_table(CHILDREN)),
                layers: m!("open table", txn.open_table(LAYERS)),
                counter: m!("open table", txn.open_table(COUNTER)),
                refs: m!("open table", txn.open_table(REFS)),
            };
            f(&mut tx)
        };
        match out {
            Ok(v) => {
                m!("commit", txn.commit());
                Ok(v)
            }
            Err(e) => {
                let _ = txn.abort();
                Err(e)
            }
        }
    }

    /// The record of `key`.
    ///
    /// # Errors
    /// A database error or a damaged record.
    pub fn get(&self, key: &str) -> Result<Option<Record>> {
        let txn = m!("begin a read", self.db.begin_read());
        let t = m!("open table", txn.open_table(SNAPSHOTS));
        match m!("read snapshot", t.get(key)) {
            Some(v) => Ok(Some(decode(key, v.value())?)),
            None => Ok(None),
        }
    }

    /// Every snapshot, sorted by key, from one consistent read.
    ///
    /// # Errors
    /// A database error or a damaged record.
    pub fn list(&self) -> Result<Vec<(String, Record)>> {
        let txn = m!("begin a read", self.db.begin_read());
        let t = m!("open table", txn.open_table(SNAPSHOTS));
        let mut out = Vec::new();
        for item in m!("read snapshots", t.iter()) {
            let (k, v) = m!("read snapshots", item);
            out.push((k.value().to_owned(), decode(k.value(), v.value())?));
        }
        Ok(out)
    }

    /// Every journal entry.
    ///
    /// # Errors
    /// A database error or a damaged entry.
    pub fn journal(&self) -> Result<Vec<(String, Journal)>> {
        let txn = m!("begin a read", self.db.begin_read());
        let t = m!("open table", txn.open_table(LAYERS));
        let mut out = Vec::new();
        for item in m!("read journal", t.iter()) {
            let (k, v) = m!("read journal", item);
            out.push((k.value().to_owned(), decode(k.value(), v.value())?));
        }
        Ok(out)
    }
}

/// Where the key hints live: `<home>/.strata/containerd/keys/<layer>` holds the key or name of
/// the snapshot that layer belongs to. They are written after each settled change, for tools
/// that cannot open the database while a snapshotter holds it (`strata ls`); the database stays
/// the truth.
pub const KEYS_DIR: &str = ".strata/containerd/keys";

/// Records that `layer` belongs to snapshot `key` (best effort: a failure is logged).
pub fn write_key_hint(home: &Path, layer: &str, key: &str) {
    let dir = home.join(KEYS_DIR);
    let r = std::fs::create_dir_all(&dir).and_then(|()| {
        let tmp = dir.join(format!(".{layer}.tmp"));
        std::fs::write(&tmp, key)?;
        std::fs::rename(&tmp, dir.join(layer))
    });
    if let Err(e) = r {
        tracing::warn!(layer, key, "writing the key hint: {e}");
    }
}

/// Drops the hint of `layer`.
pub fn remove_key_hint(home: &Path, layer: &str) {
    match std::fs::remove_file(home.join(KEYS_DIR).join(layer)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(layer, "removing the key hint: {e}");
        }
        _ => {}
    }
}

/// The snapshot key of each layer of a snapshotter root, from the hints (empty for a home that
/// is not a snapshotter's root).
pub fn key_hints(home: &Path) -> BTreeMap<String, String> {
    let Ok(dir) = std::fs::read_dir(home.join(KEYS_DIR)) else {
        return BTreeMap::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            if name.starts_with('.') {
                return None;
            }
            let key = std::fs::read_to_string(e.path()).ok()?;
            Some((name, key))
        })
        .collect()
}
