//! Loads planned images into a layer store: one layer per chain id, reusing layers already
//! there, each blob streamed through hashers and a decoder into `apply_diff`. A layer whose
//! content does not hash to its diff id (or its blob to its digest) is removed again and the
//! load fails. Never holds a layer in memory; never prints (progress goes to a [`Progress`]).

use std::io::{self, BufReader, Read};

use strata::{FillGuard, LayerId};

use crate::compression::{Compression, Decoder};
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};
use crate::manifest::{ImagePlan, LayerPlan};
use crate::source::Source;

/// The store operations loading needs. [`strata::Driver`] implements it; tests use a fake.
pub trait LayerStore {
    /// Whether the layer exists.
    fn exists(&self, id: &LayerId) -> bool;
    /// Creates an empty read-only layer on `parent`.
    ///
    /// # Errors
    /// As the store's create.
    fn create(&self, id: &LayerId, parent: Option<&LayerId>) -> strata::Result<()>;
    /// Applies an uncompressed layer tar; returns the layer's size. `fill` is the marker
    /// [`LayerStore::begin_fill`] gave for the layer, if any: the apply runs under it.
    ///
    /// # Errors
    /// As the store's apply.
    fn apply_diff(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        fill: Option<&FillGuard>,
        tar: &mut dyn Read,
    ) -> strata::Result<u64>;
    /// Removes the layer.
    ///
    /// # Errors
    /// As the store's remove.
    fn remove(&self, id: &LayerId) -> strata::Result<()>;
    /// Marks layer `id` as being filled (see the crate docs), waiting while another load holds
    /// the mark; `None` turns crash detection and cross-process waiting off.
    ///
    /// # Errors
    /// As the store's `begin_fill`.
    fn begin_fill(&self, _id: &LayerId) -> strata::Result<Option<FillGuard>> {
        Ok(None)
    }
}

impl LayerStore for strata::Driver {
    fn exists(&self, id: &LayerId) -> bool {
        strata::Driver::exists(self, id)
    }
    fn create(&self, id: &LayerId, parent: Option<&LayerId>) -> strata::Result<()> {
        strata::Driver::create(self, id, parent, &strata::StorageOpts::default())
    }
    fn apply_diff(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        fill: Option<&FillGuard>,
        tar: &mut dyn Read,
    ) -> strata::Result<u64> {
        match fill {
            Some(fill) if fill.id() == id => {
                strata::Driver::apply_diff_filling(self, fill, parent, tar)
            }
            _ => strata::Driver::apply_diff(self, id, parent, tar),
        }
    }
    fn remove(&self, id: &LayerId) -> strata::Result<()> {
        strata::Driver::remove(self, id)
    }
    fn begin_fill(&self, id: &LayerId) -> strata::Result<Option<FillGuard>> {
        strata::Driver::begin_fill(self, id).map(Some)
    }
}

/// Receives progress while loading. Every method has an empty default.
pub trait Progress {
    /// A layer starts loading: which image and layer (from 0), how many layers the image has,
    /// and the blob's size as stored.
    fn layer_start(&mut self, _image: usize, _index: usize, _count: usize, _blob_size: u64) {}
    /// Bytes of the current blob read so far.
    fn layer_bytes(&mut self, _read: u64) {}
    /// A layer is done (applied or reused).
    fn layer_done(&mut self, _layer: &LoadedLayer) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// One layer after loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedLayer {
    /// The layer id in the store: the chain id's hex.
    pub id: LayerId,
    /// The chain id.
    pub chain_id: Digest,
    /// The diff id (verified when the layer was applied now).
    pub diff_id: Digest,
    /// Whether the layer was already in the store (and so left untouched).
    pub reused: bool,
    /// The layer's size (DiffSize) when it was applied now.
    pub size: Option<u64>,
    /// The blob's compression when it was applied now.
    pub compression: Option<Compression>,
}

/// One image after loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// Names the archive gives the image.
    pub tags: Vec<String>,
    /// Its layers, base first.
    pub layers: Vec<LoadedLayer>,
}

impl LoadedImage {
    /// The top layer: the one a container would be created on (`None` for an image with no
    /// layers).
    pub fn top(&self) -> Option<&LayerId> {
        self.layers.last().map(|l| &l.id)
    }
}

pub(crate) fn load_plans(
    store: &dyn LayerStore,
    src: &Source,
    plans: &[ImagePlan],
    progress: &mut dyn Progress,
) -> Result<Vec<LoadedImage>> {
    let mut images = Vec::with_capacity(plans.len());
    for (image_no, plan) in plans.iter().enumerate() {
        let mut chain: Option<Digest> = None;
        let mut parent: Option<LayerId> = None;
        let mut layers = Vec::with_capacity(plan.layers.len());
        for (index, layer) in plan.layers.iter().enumerate() {
            let chain_id = Digest::chain(chain.as_ref(), &layer.diff_id);
            let id: LayerId = chain_id
                .hex()
                .parse()
                .expect("64 hex characters are a valid layer id");
            let pos = LayerPos {
                image: image_no,
                index,
                count: plan.layers.len(),
            };
            let fill = store.begin_fill(&id).map_err(|source| Error::Store {
                op: "mark as being filled",
                layer: id.to_string(),
                source: Box::new(source),
            })?;
            if fill.as_ref().is_some_and(FillGuard::was_incomplete) && store.exists(&id) {
                // A load failed or died while filling this layer: its content cannot be trusted.
                tracing::warn!(layer = %id, "redoing a layer a previous load left unfinished");
                store.remove(&id).map_err(|source| Error::Store {
                    op: "remove unfinished",
                    layer: id.to_string(),
                    source: Box::new(source),
                })?;
            }
            let result = if store.exists(&id) {
                progress.layer_start(image_no, index, plan.layers.len(), 0);
                tracing::debug!(layer = %id, "reusing layer");
                Ok((true, None))
            } else {
                let at = LayerAt {
                    pos,
                    id: &id,
                    parent: parent.as_ref(),
                    fill: fill.as_ref(),
                };
                apply_layer(store, src, layer, at, progress).map(|applied| (false, Some(applied)))
            };
            let (reused, applied) = match result {
                Ok(r) => r,
                Err(e) => {
                    // The failed layer was removed; its mark goes too, unless the removal
                    // failed: then the layer stays marked incomplete for the next load to redo.
                    if let Some(f) = fill.filter(|_| !store.exists(&id)) {
                        if let Err(me) = f.finish() {
                            tracing::warn!(layer = %id, error = %me, "removing fill marker");
                        }
                    }
                    return Err(e);
                }
            };
            if let Some(f) = fill {
                f.finish().map_err(|source| Error::Store {
                    op: "finish",
                    layer: id.to_string(),
                    source: Box::new(source),
                })?;
            }
            let loaded = LoadedLayer {
                id: id.clone(),
                chain_id: chain_id.clone(),
                diff_id: layer.diff_id.clone(),
                reused,
                size: applied.map(|a| a.0),
                compression: applied.map(|a| a.1),
            };
            progress.layer_done(&loaded);
            layers.push(loaded);
            chain = Some(chain_id);
            parent = Some(id);
        }
        images.push(LoadedImage {
            tags: plan.tags.clone(),
            layers,
        });
    }
    Ok(images)
}

#[derive(Clone, Copy)]
struct LayerPos {
    image: usize,
    index: usize,
    count: usize,
}

/// Where a layer goes: its place in the image, its id and parent, and its fill marker.
#[derive(Clone, Copy)]
struct LayerAt<'a> {
    pos: LayerPos,
    id: &'a LayerId,
    parent: Option<&'a LayerId>,
    fill: Option<&'a FillGuard>,
}

/// Creates the layer and streams the blob into it; removes it again on any failure.
fn apply_layer(
    store: &dyn LayerStore,
    src: &Source,
    layer: &LayerPlan,
    at: LayerAt<'_>,
    progress: &mut dyn Progress,
) -> Result<(u64, Compression)> {
    let (blob, blob_size) = src.open_file(&layer.blob, "layer")?;
    progress.layer_start(at.pos.image, at.pos.index, at.pos.count, blob_size);
    store
        .create(at.id, at.parent)
        .map_err(|source| Error::Store {
            op: "create",
            layer: at.id.to_string(),
            source: Box::new(source),
        })?;
    let result = stream_into(store, src, layer, at, blob, progress);
    if result.is_err() {
        // Differs from a plain apply: the layer is taken out again, so a failed load never
        // leaves a layer whose id promises content it does not hold.
        if let Err(e) = store.remove(at.id) {
            tracing::warn!(layer = %at.id, error = %e, "removing the partly loaded layer failed");
        }
    }
    result
}

fn stream_into(
    store: &dyn LayerStore,
    src: &Source,
    layer: &LayerPlan,
    at: LayerAt<'_>,
    blob: Box<dyn io::BufRead + Send + '_>,
    progress: &mut dyn Progress,
) -> Result<(u64, Compression)> {
    let index = at.pos.index;
    let id = at.id;
    let read_err = |source| Error::ReadLayer {
        archive: src.path().to_owned(),
        index,
        name: layer.blob.clone(),
        source,
    };
    let counted = Counting {
        inner: blob,
        read: 0,
        reported: 0,
        progress,
    };
    // The stored blob is hashed only when the metadata names its digest (OCI, Docker 25+);
    // a legacy docker-save layer is checked by its diff id alone.
    let raw = if layer.digest.is_some() {
        Raw::Hashed(HashingReader::new(counted))
    } else {
        Raw::Plain(counted)
    };
    let raw = BufReader::with_capacity(256 * 1024, raw);
    let decoder = Decoder::new(raw).map_err(read_err)?;
    let compression = decoder.kind();
    let mut tar = HashingReader::new(decoder);
    let size = store
        .apply_diff(id, at.parent, at.fill, &mut tar)
        .map_err(|source| Error::Store {
            op: "apply",
            layer: id.to_string(),
            source: Box::new(source),
        })?;
    // apply_diff may stop at the end-of-archive blocks: the diff id covers every byte.
    let (diff_id, _, decoder) = tar.finish().map_err(read_err)?;
    let (blob_digest, mut counted) = decoder
        .into_inner()
        .into_inner()
        .finish()
        .map_err(read_err)?;
    counted.report();
    let mismatch = |what, expected: &Digest, actual: Digest| Error::DigestMismatch {
        index,
        name: layer.blob.clone(),
        what,
        expected: expected.to_string(),
        actual: actual.to_string(),
    };
    if diff_id != layer.diff_id {
        return Err(mismatch("diff id", &layer.diff_id, diff_id));
    }
    if let (Some(expected), Some(actual)) = (&layer.digest, blob_digest) {
        if &actual != expected {
            return Err(mismatch("blob digest", expected, actual));
        }
    }
    Ok((size, compression))
}

/// The stored blob, hashed or not.
enum Raw<R> {
    Hashed(HashingReader<R>),
    Plain(R),
}

impl<R: Read> Raw<R> {
    /// Reads the rest of the blob; returns its digest (when hashed) and the reader.
    fn finish(self) -> io::Result<(Option<Digest>, R)> {
        match self {
            Raw::Hashed(h) => h.finish().map(|(d, _, r)| (Some(d), r)),
            Raw::Plain(mut r) => {
                io::copy(&mut r, &mut io::sink())?;
                Ok((None, r))
            }
        }
    }
}

impl<R: Read> Read for Raw<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Raw::Hashed(h) => h.read(buf),
            Raw::Plain(r) => r.read(buf),
        }
    }
}

/// Counts bytes read and reports them to the progress sink every 1 MiB.
struct Counting<'p, R> {
    inner: R,
    read: u64,
    reported: u64,
    progress: &'p mut dyn Progress,
}

impl<R> Counting<'_, R> {
    fn report(&mut self) {
        self.reported = self.read;
        self.progress.layer_bytes(self.read);
    }
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read - self.reported >= 1 << 20 {
            self.report();
        }
        Ok(n)
    }
}
