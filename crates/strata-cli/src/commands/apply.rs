//! `strata apply ID [--parent P] [FILE|-]`: streams a layer tar (plain, gzip or zstd, told
//! apart by its first bytes) into the layer and prints the layer's size (as `strata size ID`).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use strata::{Driver, LayerId};
use strata_image::compression::Decoder;

use super::{parse_id, Outcome};
use crate::exit::{MissingInput, UsageError};
use crate::output::{self, Output};

/// Flags of `apply`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The layer to fill (created beforehand with `strata create`).
    #[arg(value_parser = parse_id)]
    pub id: LayerId,
    /// The layer the tar is a diff against, when it is not the layer's own parent.
    #[arg(long, value_parser = parse_id)]
    pub parent: Option<LayerId>,
    /// The tar; `-` or nothing for standard input.
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
}

#[derive(Serialize)]
struct Applied<'a> {
    id: &'a str,
    size: u64,
    compression: String,
}

/// Opens an input file; a missing one is a [`MissingInput`] (exit 3).
pub fn open_input(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            anyhow::Error::new(MissingInput(path.to_owned()))
        } else {
            anyhow::Error::new(e).context(format!("open {}", path.display()))
        }
    })
}

/// Applies the tar and prints the size.
pub fn run(d: &Driver, args: Args, out: Output) -> Result<Outcome> {
    if args.parent.as_ref() == Some(&args.id) {
        return Err(UsageError(format!(
            "--parent {} names the layer itself; give the layer the tar is a diff against",
            args.id
        ))
        .into());
    }
    if let Some(p) = args.parent.as_ref().filter(|p| !d.exists(p)) {
        return Err(strata::Error::LayerNotFound { id: p.to_string() })
            .with_context(|| format!("apply to layer {} against parent {p}", args.id));
    }
    // A missing layer is exit 3 here (`parent` names it).
    let own_parent = super::parent_or_own(d, &args.id, None)?;
    let parent = args.parent.clone().or_else(|| own_parent.clone());
    let (input, total, name): (Box<dyn Read>, Option<u64>, String) = match args.file.as_deref() {
        None => (Box::new(io::stdin().lock()), None, "standard input".into()),
        Some(p) if p == Path::new("-") => {
            (Box::new(io::stdin().lock()), None, "standard input".into())
        }
        Some(p) => {
            let f = open_input(p)?;
            let len = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
            (Box::new(f), len, p.display().to_string())
        }
    };
    let bar = output::bytes_bar(total, format!("apply {}", args.id));
    let reader = BufReader::with_capacity(256 * 1024, bar.wrap_read(input));
    let decoder = Decoder::new(reader).with_context(|| format!("read {name}"))?;
    let compression = decoder.kind();
    let applied = d
        .apply_diff(&args.id, parent.as_ref(), decoder)
        .with_context(|| format!("apply {name} ({compression}) to layer {}", args.id))?;
    // One figure whatever path the store took: the layer's size against its own parent (what
    // `strata size ID` prints). The store returns that already when the tar is a diff against
    // the layer's own parent; against another layer it counts the bytes it wrote instead.
    let size = if parent == own_parent {
        applied
    } else {
        d.diff_size(&args.id, own_parent.as_ref())
            .with_context(|| format!("size layer {}", args.id))?
    };
    bar.finish_and_clear();
    let data = Applied {
        id: args.id.as_str(),
        size,
        compression: compression.to_string(),
    };
    out.print(&data, |w| writeln!(w, "{size}"))?;
    Ok(Outcome::Ok)
}
