//! The snapshotter's semantics, synchronous: containerd's snapshot operations on a strata
//! home plus its metadata database. Each operation validates and reserves in one metadata
//! transaction, changes the filesystem, then settles in a second transaction; the journal in
//! `meta.rs` names every layer whose filesystem change may be unfinished, and
//! [`Snapshotter::cleanup`] (run at open, on containerd's Cleanup and by `strata check
//! --repair`) finishes or undoes it.
//!
//! Every snapshot is a strata layer `snap-<n>`: an active one is a read-write layer (a quota
//! when a size is asked for) on its parent's layer; a view is a read-only layer; Commit keeps
//! the layer and turns the record into a committed one. This module never speaks gRPC.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use strata::{Driver, LayerId, Options, StorageOpts};

use crate::error::{Error, Result};
use crate::filters::{Fields, Filter};
use crate::meta::{Journal, Kind, Meta, Record, Time, Usage};
use crate::mounts;
use crate::proto::types::Mount;

/// The label containerd's unpacker puts on a Prepare: the chain id of the layer to unpack.
pub const LABEL_SNAPSHOT_REF: &str = "containerd.io/snapshot.ref";
/// The size limit of an active snapshot in bytes (containerd 2.x).
pub const LABEL_MAX_SIZE: &str = "containerd.io/snapshot/max-size";
/// strata's size limit of an active snapshot, with units (`10G`, `512M`). Its prefix is the one
/// containerd passes on to proxy snapshotters.
pub const LABEL_STRATA_SIZE: &str = "containerd.io/snapshot/strata.size";
/// The most bytes a label's key and value may take together (as containerd).
pub const MAX_LABEL_BYTES: usize = 4096;

/// Test hook: a process started with `STRATA_CONTAINERD_CRASH_AT=<point>` aborts at that
/// point by sending itself SIGKILL, so the crash tests can stop the server between
/// a metadata commit and the filesystem change that follows it. Points: `prepare-reserved`,
/// `prepare-created`, `commit-rebased`, `remove-reserved`.
fn crash_point(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if AT
        .get_or_init(|| std::env::var("STRATA_CONTAINERD_CRASH_AT").ok())
        .as_deref()
        == Some(point)
    {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        std::process::abort();
    }
}

/// A snapshotter on one strata home.
#[derive(Debug)]
pub struct Snapshotter {
    driver: Driver,
    meta: Meta,
    /// Layers an operation of this process is working on: Cleanup leaves them alone.
    busy: Mutex<HashSet<String>>,
    page_size: usize,
}

/// Marks a layer busy until dropped.
struct Busy<'a> {
    set: &'a Mutex<HashSet<String>>,
    layer: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.lock() {
            s.remove(&self.layer);
        }
    }
}

fn layer_id(layer: &str) -> Result<LayerId> {
    layer
        .parse()
        .map_err(|e: strata::Error| Error::MetaCorrupt {
            key: layer.to_owned(),
            what: e.to_string(),
        })
}

fn check_key(what: &str, key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid(what, "must not be empty"));
    }
    Ok(())
}

fn check_labels(labels: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in labels {
        if k.len() + v.len() > MAX_LABEL_BYTES {
            return Err(Error::invalid(
                format!("label {k:?}"),
                format!("key and value exceed {MAX_LABEL_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

/// The size limit a Prepare asks for through its labels.
fn size_from_labels(labels: &BTreeMap<String, String>) -> Result<Option<u64>> {
    let mut size = None;
    if let Some(v) = labels.get(LABEL_MAX_SIZE) {
        let n: u64 = v.trim().parse().map_err(|_| {
            Error::invalid(
                format!("label {LABEL_MAX_SIZE}={v:?}"),
                "expected a number of bytes",
            )
        })?;
        size = (n > 0).then_some(n);
    }
    if let Some(v) = labels.get(LABEL_STRATA_SIZE) {
        let n = strata::options::parse_size(v)
            .map_err(|why| Error::invalid(format!("label {LABEL_STRATA_SIZE}"), why))?;
        if n > 0 {
            size = Some(size.map_or(n, |s: u64| s.min(n)));
        }
    }
    Ok(size)
}

impl Snapshotter {
    /// Opens the home at `home` (created when missing) with driver `options`, and reclaims
    /// whatever an earlier process left unfinished.
    ///
    /// # Errors
    /// The store cannot be opened (unsupported host, bad options), the metadata is held by
    /// another process, or recovery failed.
    pub fn open(home: &Path, options: Options) -> Result<Snapshotter> {
        let driver = Driver::open(home, options).map_err(|source| Error::OpenStore {
            home: home.to_owned(),
            source: Box::new(source),
        })?;
        let meta = Meta::open(driver.home())?;
        let s = Snapshotter {
            driver,
            meta,
            busy: Mutex::new(HashSet::new()),
            page_size: mounts::page_size(),
        };
        s.reclaim()?;
        Ok(s)
    }

    /// The store.
    pub fn driver(&self) -> &Driver {
        &self.driver
    }

    /// The metadata database.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    fn busy(&self, layer: &str) -> Busy<'_> {
        self.busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(layer.to_owned());
        Busy {
            set: &self.busy,
            layer: layer.to_owned(),
        }
    }

    /// A committed parent's record, or the error containerd expects.
    fn committed_parent(tx: &crate::meta::Tx<'_>, parent: &str) -> Result<Record> {
        let p = tx.get(parent)?.ok_or_else(|| Error::NotFound {
            key: parent.to_owned(),
        })?;
        if p.kind != Kind::Committed {
            return Err(Error::invalid(
                format!("parent {parent:?}"),
                "is not a committed snapshot",
            ));
        }
        Ok(p)
    }

    /// Prepare: a new active snapshot on `parent`; returns its mounts.
    ///
    /// # Errors
    /// InvalidArgument (empty key, bad labels, parent not committed, a quota where there are
    /// none), NotFound (parent), AlreadyExists (key, or the committed snapshot the
    /// `containerd.io/snapshot.ref` label names), or a store failure.
    pub fn prepare(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>> {
        self.create(Kind::Active, key, parent, labels)
    }

    /// View: a new read-only snapshot of `parent`; returns its mounts.
    ///
    /// # Errors
    /// As [`Snapshotter::prepare`].
    pub fn view(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>> {
        self.create(Kind::View, key, parent, labels)
    }

    fn create(
        &self,
        kind: Kind,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>> {
        check_key("key", key)?;
        check_labels(&labels)?;
        let size = if kind == Kind::Active {
            size_from_labels(&labels)?
        } else {
            None
        };
        if size.is_some() {
            if let Err(why) = self.driver.quota_support() {
                return Err(Error::precondition(
                    key,
                    format!(
                        "a size limit needs project quotas, which {} does not offer: {why}",
                        self.driver.home().display()
                    ),
                ));
            }
        }
        let target = labels.get(LABEL_SNAPSHOT_REF).cloned();
        // 1. Reserve: check, take a layer number, journal the layer as Creating. The layer is
        // marked busy before the journal entry commits, so a concurrent Cleanup never takes it
        // for a leftover.
        let mut busy = None;
        let reserved = self.meta.write(|tx| {
            if let Some(t) = &target {
                if tx.find_committed_ref(t, parent)? {
                    return Err(Error::AlreadyExists { key: t.clone() });
                }
            }
            if tx.get(key)?.is_some() {
                return Err(Error::AlreadyExists {
                    key: key.to_owned(),
                });
            }
            let parent_layer = match parent {
                Some(p) => Some(Self::committed_parent(tx, p)?.layer),
                None => None,
            };
            let layer = tx.next_layer()?;
            busy = Some(self.busy(&layer));
            tx.journal(
                &layer,
                &Journal::Creating {
                    key: key.to_owned(),
                },
            )?;
            Ok((layer, parent_layer))
        });
        let (layer, parent_layer) = reserved?;
        let _busy = busy;
        let id = layer_id(&layer)?;
        let parent_id = parent_layer.as_deref().map(layer_id).transpose()?;
        crash_point("prepare-reserved");
        // 2. The filesystem.
        let made = match kind {
            Kind::Active => self.driver.create_read_write(
                &id,
                parent_id.as_ref(),
                &StorageOpts { size, inodes: None },
            ),
            _ => self
                .driver
                .create(&id, parent_id.as_ref(), &StorageOpts::default()),
        }
        .map_err(Error::store("create the layer of", key, &id))
        .and_then(|()| {
            let m = self.render(kind, &id, parent_id.as_ref(), key)?;
            mounts::fits_containerd(&m, self.page_size)
                .map_err(|why| Error::invalid(format!("parent {:?}", parent.unwrap_or("")), why))?;
            Ok(m)
        });
        crash_point("prepare-created");
        // 3. Settle: the record appears, or the layer goes again.
        let settled = made.and_then(|m| {
            self.meta.write(|tx| {
                if tx.get(key)?.is_some() {
                    return Err(Error::AlreadyExists {
                        key: key.to_owned(),
                    });
                }
                if let Some(p) = parent {
                    Self::committed_parent(tx, p)?;
                }
                let now = Time::now();
                tx.put(
                    key,
                    &Record {
                        layer: layer.clone(),
                        kind,
                        parent: parent.map(str::to_owned),
                        labels,
                        created: now,
                        updated: now,
                        usage: None,
                    },
                )?;
                tx.journal(
                    &layer,
                    &Journal::Live {
                        key: key.to_owned(),
                    },
                )?;
                Ok(m)
            })
        });
        match &settled {
            Ok(_) => crate::meta::write_key_hint(self.driver.home(), &layer, key),
            Err(_) => self.drop_layer(&id),
        }
        tracing::debug!(key, %id, ?kind, ok = settled.is_ok(), "created snapshot");
        settled
    }

    /// Removes a layer that never became (or no longer is) a snapshot, and its journal entry;
    /// a failure leaves the entry for Cleanup.
    fn drop_layer(&self, id: &LayerId) {
        match self.driver.remove(id) {
            Ok(()) => {
                crate::meta::remove_key_hint(self.driver.home(), id.as_str());
                if let Err(e) = self.meta.write(|tx| tx.forget(id.as_str())) {
                    tracing::warn!(%id, "forgetting a removed layer: {e}");
                }
            }
            Err(e) => tracing::warn!(%id, "removing a layer (Cleanup retries): {e}"),
        }
    }

    fn render(
        &self,
        kind: Kind,
        id: &LayerId,
        parent: Option<&LayerId>,
        key: &str,
    ) -> Result<Vec<Mount>> {
        let plan = match (kind, parent) {
            // As containerd's overlayfs: a view shows its parent as the parent would mount
            // read-only (a bind for a base layer, else an overlay of its chain).
            (Kind::View, Some(p)) => self.driver.mount_plan(p, true).map_err(Error::store(
                "plan the mount of",
                key,
                p,
            ))?,
            (Kind::View, None) => self.driver.mount_plan(id, true).map_err(Error::store(
                "plan the mount of",
                key,
                id,
            ))?,
            _ => self.driver.mount_plan(id, false).map_err(Error::store(
                "plan the mount of",
                key,
                id,
            ))?,
        };
        Ok(mounts::render(&plan, kind == Kind::View))
    }

    /// Mounts: the mounts of an active snapshot or a view.
    ///
    /// # Errors
    /// NotFound, FailedPrecondition (committed), or a store failure.
    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let rec = self.stat(key)?;
        if rec.kind == Kind::Committed {
            return Err(Error::precondition(
                key,
                "is committed; only active snapshots and views have mounts",
            ));
        }
        let id = layer_id(&rec.layer)?;
        let parent = match &rec.parent {
            Some(p) => Some(layer_id(&self.stat(p)?.layer)?),
            None => None,
        };
        self.render(rec.kind, &id, parent.as_ref(), key)
    }

    /// Stat: the record of `key`.
    ///
    /// # Errors
    /// NotFound, or a metadata failure.
    pub fn stat(&self, key: &str) -> Result<Record> {
        self.meta.get(key)?.ok_or_else(|| Error::NotFound {
            key: key.to_owned(),
        })
    }

    /// Commit: active snapshot `key` becomes committed snapshot `name` with `labels`. With
    /// `parent` (containerd's `rebase`), a snapshot prepared without a parent is put on it.
    ///
    /// # Errors
    /// NotFound (key, parent), AlreadyExists (name), FailedPrecondition (not active, or on
    /// another parent already), InvalidArgument (parent not committed), or a store failure.
    pub fn commit(
        &self,
        name: &str,
        key: &str,
        mut labels: BTreeMap<String, String>,
        parent: Option<&str>,
    ) -> Result<()> {
        check_key("name", name)?;
        check_key("key", key)?;
        check_labels(&labels)?;
        let check = |tx: &crate::meta::Tx<'_>| -> Result<(Record, Option<Record>)> {
            let rec = tx.get(key)?.ok_or_else(|| Error::NotFound {
                key: key.to_owned(),
            })?;
            if rec.kind != Kind::Active {
                return Err(Error::precondition(
                    key,
                    format!(
                        "is a {} snapshot; only active ones commit",
                        rec.kind.as_str()
                    ),
                ));
            }
            if tx.get(name)?.is_some() {
                return Err(Error::AlreadyExists {
                    key: name.to_owned(),
                });
            }
            let rebase = match parent {
                Some(p) if rec.parent.as_deref() != Some(p) => {
                    if let Some(old) = &rec.parent {
                        return Err(Error::precondition(
                            key,
                            format!("sits on {old:?} and cannot be committed onto {p:?}"),
                        ));
                    }
                    Some(Self::committed_parent(tx, p)?)
                }
                _ => None,
            };
            Ok((rec, rebase))
        };
        // Validate (and, for a rebase, journal it) before measuring or touching files.
        let mut busy = None;
        let (rec, rebase) = self.meta.write(|tx| {
            let (rec, rebase) = check(tx)?;
            busy = Some(self.busy(&rec.layer));
            if rebase.is_some() {
                tx.journal(
                    &rec.layer,
                    &Journal::Rebasing {
                        key: key.to_owned(),
                    },
                )?;
            }
            Ok((rec, rebase))
        })?;
        let _busy = busy;
        let id = layer_id(&rec.layer)?;
        let undo_rebase = |why: Error| -> Error {
            if rebase.is_some() {
                let undone = self
                    .driver
                    .set_parent(&id, None)
                    .map_err(Error::store("undo the rebase of", key, &id))
                    .and_then(|()| {
                        self.meta.write(|tx| {
                            tx.journal(
                                &rec.layer,
                                &Journal::Live {
                                    key: key.to_owned(),
                                },
                            )
                        })
                    });
                if let Err(e) = undone {
                    tracing::warn!(key, "undoing a rebase (Cleanup retries): {e}");
                }
            }
            why
        };
        if let Some(p) = &rebase {
            let pid = layer_id(&p.layer)?;
            if let Err(e) = self
                .driver
                .set_parent(&id, Some(&pid))
                .map_err(Error::store("rebase", key, &id))
            {
                return Err(undo_rebase(e));
            }
        }
        crash_point("commit-rebased");
        // As containerd's overlayfs: the usage is measured once, at commit.
        let usage = match crate::usage::measure(&self.driver.layout().diff(&id)) {
            Ok(u) => u,
            Err(e) => return Err(undo_rebase(e)),
        };
        // The chain id containerd's unpacker labelled the Prepare with stays findable, so
        // that a later Prepare of the same layer answers AlreadyExists (see `create`).
        if let Some(r) = rec.labels.get(LABEL_SNAPSHOT_REF) {
            labels
                .entry(LABEL_SNAPSHOT_REF.to_owned())
                .or_insert_with(|| r.clone());
        }
        let committed = self.meta.write(|tx| {
            let (rec, _) = check(tx)?;
            let new_parent = match &rebase {
                Some(_) => parent.map(str::to_owned),
                None => rec.parent.clone(),
            };
            if let (Some(p), Some(_)) = (&new_parent, &rebase) {
                Self::committed_parent(tx, p)?;
            }
            tx.delete(key)?;
            let now = Time::now();
            tx.put(
                name,
                &Record {
                    layer: rec.layer.clone(),
                    kind: Kind::Committed,
                    parent: new_parent,
                    labels,
                    created: now,
                    updated: now,
                    usage: Some(usage),
                },
            )?;
            tx.journal(
                &rec.layer,
                &Journal::Live {
                    key: name.to_owned(),
                },
            )
        });
        match committed {
            Ok(()) => {
                crate::meta::write_key_hint(self.driver.home(), &rec.layer, name);
                tracing::debug!(name, key, %id, rebased = rebase.is_some(), "committed snapshot");
                Ok(())
            }
            Err(e) => Err(undo_rebase(e)),
        }
    }

    /// Remove: deletes a snapshot that has no children; its key or name is free at once.
    ///
    /// # Errors
    /// NotFound, FailedPrecondition (children), or a metadata failure. A failure deleting
    /// the layer's files is not an error: the record is gone and Cleanup finishes the job.
    pub fn remove(&self, key: &str) -> Result<()> {
        check_key("key", key)?;
        let mut busy = None;
        let rec = self.meta.write(|tx| {
            let rec = tx.get(key)?.ok_or_else(|| Error::NotFound {
                key: key.to_owned(),
            })?;
            if tx.has_children(key)? {
                return Err(Error::precondition(key, "has children; remove them first"));
            }
            if matches!(tx.journal_of(&rec.layer)?, Some(Journal::Rebasing { .. })) {
                return Err(Error::precondition(key, "is being committed"));
            }
            busy = Some(self.busy(&rec.layer));
            tx.delete(key)?;
            tx.journal(
                &rec.layer,
                &Journal::Removing {
                    key: key.to_owned(),
                },
            )?;
            Ok(rec)
        })?;
        let _busy = busy;
        let id = layer_id(&rec.layer)?;
        crash_point("remove-reserved");
        self.drop_layer(&id);
        tracing::debug!(key, %id, "removed snapshot");
        Ok(())
    }

    /// Update: changes labels only. No `paths`: replace all labels; `labels`: replace the
    /// map; `labels.<k>`: set one label (an empty value deletes it). Returns the new record.
    ///
    /// # Errors
    /// NotFound, InvalidArgument (another path, bad labels), or a metadata failure.
    pub fn update(
        &self,
        key: &str,
        labels: BTreeMap<String, String>,
        paths: &[String],
    ) -> Result<Record> {
        check_key("name", key)?;
        check_labels(&labels)?;
        self.meta.write(|tx| {
            let mut rec = tx.get(key)?.ok_or_else(|| Error::NotFound {
                key: key.to_owned(),
            })?;
            if paths.is_empty() {
                rec.labels = labels.clone();
            }
            for path in paths {
                if path == "labels" {
                    rec.labels = labels.clone();
                } else if let Some(k) = path.strip_prefix("labels.") {
                    match labels.get(k).filter(|v| !v.is_empty()) {
                        Some(v) => {
                            rec.labels.insert(k.to_owned(), v.clone());
                        }
                        None => {
                            rec.labels.remove(k);
                        }
                    }
                } else {
                    return Err(Error::invalid(
                        format!("field path {path:?}"),
                        "only labels and labels.<key> can be updated",
                    ));
                }
            }
            rec.updated = Time::now();
            tx.put(key, &rec)?;
            Ok(rec)
        })
    }

    /// List: every snapshot that passes `filter`, sorted by key.
    ///
    /// # Errors
    /// A metadata failure.
    pub fn list(&self, filter: &Filter) -> Result<Vec<(String, Record)>> {
        Ok(self
            .meta
            .list()?
            .into_iter()
            .filter(|(k, r)| {
                filter.matches(&Fields {
                    name: k,
                    parent: r.parent.as_deref().unwrap_or(""),
                    kind: r.kind.as_str(),
                    labels: &r.labels,
                })
            })
            .collect())
    }

    /// Usage: a committed snapshot's usage from its record (measured once at commit); an
    /// active one's from its project quota when it has one (one `quotactl`), else by walking
    /// its upper directory, as containerd's overlayfs does.
    ///
    /// # Errors
    /// NotFound, or a failure reading the usage.
    pub fn usage(&self, key: &str) -> Result<Usage> {
        let rec = self.stat(key)?;
        if let Some(u) = rec.usage {
            return Ok(u);
        }
        let id = layer_id(&rec.layer)?;
        if let Some(q) =
            self.driver
                .quota_usage(&id)
                .map_err(Error::store("read the quota of", key, &id))?
        {
            return Ok(Usage {
                size: q.size_used,
                inodes: q.inodes_used,
            });
        }
        crate::usage::measure(&self.driver.layout().diff(&id))
    }

    /// Cleanup: finishes what interrupted operations left (layers journalled as being
    /// created, removed or rebased by no running operation), then repairs the home (staging
    /// leftovers, dangling links) as `strata check --repair` does. Returns how many layers
    /// were reclaimed.
    ///
    /// # Errors
    /// A metadata or store failure.
    pub fn cleanup(&self) -> Result<usize> {
        let n = self.reclaim()?;
        let report = self.driver.check(true).map_err(|source| Error::OpenStore {
            home: self.driver.home().to_owned(),
            source: Box::new(source),
        })?;
        for p in report.problems.iter().filter(|p| !p.repaired) {
            tracing::warn!(kind = %p.kind, path = %p.path.display(), "left unrepaired: {}", p.detail);
        }
        Ok(n)
    }

    /// Settles every journal entry no running operation holds.
    fn reclaim(&self) -> Result<usize> {
        let mut n = 0;
        for (layer, j) in self.meta.journal()? {
            if matches!(j, Journal::Live { .. }) {
                continue;
            }
            let _busy = {
                let mut busy = self
                    .busy
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !busy.insert(layer.clone()) {
                    continue;
                }
                Busy {
                    set: &self.busy,
                    layer: layer.clone(),
                }
            };
            // Re-read under the busy mark: an operation may have settled it meanwhile.
            let Some(j) = self.meta.write(|tx| tx.journal_of(&layer))? else {
                continue;
            };
            let id = layer_id(&layer)?;
            match j {
                Journal::Live { .. } => continue,
                Journal::Creating { key } | Journal::Removing { key } => {
                    self.driver.remove(&id).map_err(Error::store(
                        "reclaim the layer of",
                        &key,
                        &id,
                    ))?;
                    crate::meta::remove_key_hint(self.driver.home(), &layer);
                    self.meta.write(|tx| tx.forget(&layer))?;
                }
                Journal::Rebasing { key } => {
                    self.driver.set_parent(&id, None).map_err(Error::store(
                        "undo the rebase of",
                        &key,
                        &id,
                    ))?;
                    self.meta
                        .write(|tx| tx.journal(&layer, &Journal::Live { key }))?;
                }
            }
            tracing::info!(%id, "reclaimed an interrupted operation's layer");
            n += 1;
        }
        Ok(n)
    }
}
