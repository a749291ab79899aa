//! `strata load FILE|-`: loads a docker-save or OCI image archive, or an OCI layout directory,
//! one layer per chain id (reusing layers already there, verifying every diff id), and prints
//! each image's top layer id.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use serde::Serialize;
use strata::Driver;
use strata_image::{Archive, LoadedLayer, Progress};

use super::Outcome;
use crate::exit::MissingInput;
use crate::output::{self, Output};

/// Flags of `load`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The archive (plain, gzip or zstd), an OCI layout directory, or `-` for standard input.
    #[arg(value_name = "FILE|-")]
    pub file: PathBuf,
}

#[derive(Serialize)]
struct Loaded {
    images: Vec<Image>,
}

#[derive(Serialize)]
struct Image {
    tags: Vec<String>,
    top: Option<String>,
    layers: Vec<Layer>,
}

#[derive(Serialize)]
struct Layer {
    id: String,
    chain_id: String,
    diff_id: String,
    reused: bool,
    size: Option<u64>,
    compression: Option<String>,
}

impl From<&LoadedLayer> for Layer {
    fn from(l: &LoadedLayer) -> Layer {
        Layer {
            id: l.id.to_string(),
            chain_id: l.chain_id.to_string(),
            diff_id: l.diff_id.to_string(),
            reused: l.reused,
            size: l.size,
            compression: l.compression.map(|c| c.to_string()),
        }
    }
}

/// One progress bar per layer, on a terminal only.
struct Bars {
    bar: Option<ProgressBar>,
}

impl Progress for Bars {
    fn layer_start(&mut self, image: usize, index: usize, count: usize, blob_size: u64) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        let msg = format!("image {} layer {}/{count}", image + 1, index + 1);
        self.bar = Some(output::bytes_bar(Some(blob_size), msg));
    }
    fn layer_bytes(&mut self, read: u64) {
        if let Some(b) = &self.bar {
            b.set_position(read);
        }
    }
    fn layer_done(&mut self, layer: &LoadedLayer) {
        if let Some(b) = self.bar.take() {
            let what = if layer.reused { "exists" } else { "loaded" };
            b.finish_and_clear();
            if output::progress_wanted() {
                let _ = writeln!(io::stderr(), "{what} {}", layer.id);
            }
        }
    }
}

/// Loads the archive.
pub fn run(d: &Driver, args: Args, out: Output) -> Result<Outcome> {
    let path = &args.file;
    let archive = if path == Path::new("-") {
        Archive::from_reader("standard input", io::stdin().lock(), d.home())
    } else {
        if !path.exists() {
            return Err(MissingInput(path.clone()).into());
        }
        Archive::open(path, d.home())
    }
    .with_context(|| format!("read image archive {}", path.display()))?;
    let mut bars = Bars { bar: None };
    let images = archive
        .load(d, &mut bars)
        .with_context(|| format!("load {}", path.display()))?;
    let data = Loaded {
        images: images
            .iter()
            .map(|i| Image {
                tags: i.tags.clone(),
                top: i.top().map(|t| t.to_string()),
                layers: i.layers.iter().map(Layer::from).collect(),
            })
            .collect(),
    };
    out.print(&data, |w| {
        for i in &data.images {
            if let Some(top) = &i.top {
                writeln!(w, "{top}")?;
            }
        }
        Ok(())
    })?;
    Ok(Outcome::Ok)
}
