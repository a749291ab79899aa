//! strata-image: loads container images from archives into a strata layer store, as
//! `docker load` does, layer by layer and verified.
//!
//! # The model
//!
//! An [`Archive`] is opened from a `docker save` tar (`manifest.json`, configs, layer tars), an
//! OCI image archive (a tar with `oci-layout` and `index.json`) or an OCI layout directory.
//! Opening indexes the archive (one pass over the tar headers) and reads the small JSON
//! documents into one [`ImagePlan`] per image: its layers from the base up, each with its blob
//! and diff id. [`Archive::load`] then walks each plan: the chain id of every layer (OCI image
//! spec: `ChainID(L0) = DiffID(L0)`, `ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))`)
//! names its layer in the store (the id is the chain id's hex, as Docker's layer store keys
//! layers). A layer already in the store is reused untouched; a missing one is created on its
//! parent and its blob streamed through a sha256 hasher, a gzip/zstd decoder chosen from the
//! magic bytes, and a second hasher into the store's `apply_diff`. A layer whose tar does not
//! hash to its diff id (or whose blob does not hash to its descriptor's digest) is removed again
//! and the load fails.
//!
//! Memory stays flat: blobs stream from their offsets in the archive file; an archive that
//! cannot be seeked (a pipe, a compressed archive) is first spooled to an unnamed temporary file
//! in a directory the caller chooses (the store's home, so the spool is on the same disk).
//!
//! Each layer is filled under the store's fill marker ([`strata::Driver::begin_fill`]), taken
//! before the layer is created and finished once its content is verified. A second load of the
//! same layer waits for the first; a layer a load left unfinished (it failed or was killed) is
//! marked incomplete in the store, which refuses to mount or build on it, and the next load
//! removes it and loads it again rather than reuse it half-filled.
//!
//! This crate never prints and never touches a layer other than those it loads (and the
//! unfinished ones a dead load left).
//!
//! ```
//! use strata_image::Digest;
//! let base = Digest::of(b"base layer tar");
//! let top = Digest::of(b"top layer tar");
//! // The top layer's id in the store is the hex of its chain id.
//! let chain = Digest::chain(Some(&base), &top);
//! assert_eq!(chain, Digest::of(format!("{base} {top}").as_bytes()));
//! assert_eq!(chain.hex().len(), 64);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod compression;
mod digest;
mod error;
mod load;
mod manifest;
mod source;

use std::io::Read;
use std::path::Path;

pub use compression::Compression;
pub use digest::{Digest, HashingReader};
pub use error::{Error, Result};
pub use load::{LayerStore, LoadedImage, LoadedLayer, NoProgress, Progress};
pub use manifest::{ImagePlan, LayerPlan};

/// An opened image archive or layout with its images' plans.
#[derive(Debug)]
pub struct Archive {
    source: source::Source,
    images: Vec<ImagePlan>,
}

impl Archive {
    /// Opens an archive file or a layout directory. `spool_dir` receives an unnamed temporary
    /// copy when the file is compressed or not seekable.
    ///
    /// # Errors
    /// The input cannot be read, is not an image archive, or its metadata is inconsistent.
    pub fn open(path: impl AsRef<Path>, spool_dir: impl AsRef<Path>) -> Result<Archive> {
        let source = source::Source::open(path.as_ref(), spool_dir.as_ref())?;
        Archive::with_source(source)
    }

    /// Reads an archive from a stream (e.g. standard input), spooling it into `spool_dir`;
    /// `name` is used in messages.
    ///
    /// # Errors
    /// As [`Archive::open`].
    pub fn from_reader(
        name: impl AsRef<Path>,
        input: impl Read,
        spool_dir: impl AsRef<Path>,
    ) -> Result<Archive> {
        let source = source::Source::from_reader(name.as_ref(), input, spool_dir.as_ref())?;
        Archive::with_source(source)
    }

    fn with_source(source: source::Source) -> Result<Archive> {
        let images = manifest::plan(&source)?;
        Ok(Archive { source, images })
    }

    /// The images the archive holds, in the archive's order.
    pub fn images(&self) -> &[ImagePlan] {
        &self.images
    }

    /// Loads every image into `store`; returns what became of each layer.
    ///
    /// # Errors
    /// A blob is missing or unreadable, a digest does not match (the layer is removed again),
    /// or the store refuses an operation. Layers completed before the failure stay.
    pub fn load(
        &self,
        store: &dyn LayerStore,
        progress: &mut dyn Progress,
    ) -> Result<Vec<LoadedImage>> {
        load::load_plans(store, &self.source, &self.images, progress)
    }
}
