//! `strata create [--rw] [--parent P] [--size SIZE] [--opt KEY=VAL]... ID`.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use strata::{Driver, LayerId, StorageOpts};

use super::{parse_id, Outcome};
use crate::exit::UsageError;

/// Flags of `create`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Create a read-write (container) layer instead of a read-only image layer.
    #[arg(long)]
    pub rw: bool,
    /// The parent layer.
    #[arg(long, value_parser = parse_id)]
    pub parent: Option<LayerId>,
    /// Quota of the layer (e.g. 10G); storage option `size`.
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,
    /// A per-layer storage option (size, inodes); repeat for several.
    #[arg(long = "opt", value_name = "KEY=VAL")]
    pub opts: Vec<String>,
    /// The new layer's id.
    #[arg(value_parser = parse_id)]
    pub id: LayerId,
}

/// Creates the layer.
pub fn run(d: &Driver, args: Args) -> Result<Outcome> {
    let mut raw = BTreeMap::new();
    for kv in &args.opts {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| UsageError(format!("--opt {kv:?}: expected KEY=VAL")))?;
        raw.insert(k.to_owned(), v.to_owned());
    }
    if let Some(size) = &args.size {
        raw.insert("size".to_owned(), size.clone());
    }
    let opts = StorageOpts::parse(&raw).context("parse storage options")?;
    let parent = args.parent.as_ref();
    let result = if args.rw {
        d.create_read_write(&args.id, parent, &opts)
    } else {
        d.create(&args.id, parent, &opts)
    };
    result.with_context(|| format!("create layer {}", args.id))?;
    Ok(Outcome::Ok)
}
