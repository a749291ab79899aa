//! `strata diff ID [--parent P] [-o FILE]`: the layer's changes as a tar, to stdout or to a
//! file (written beside it under a temporary name, then renamed, so a failed diff leaves no
//! half tar).

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use strata::{Driver, LayerId};

use super::{parse_id, Outcome};
use crate::exit::UsageError;
use crate::output::{self, CountingWriter};

/// Flags of `diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The layer.
    #[arg(value_parser = parse_id)]
    pub id: LayerId,
    /// Diff against this layer instead of the layer's own parent.
    #[arg(long, value_parser = parse_id)]
    pub parent: Option<LayerId>,
    /// Write the tar here instead of to standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Writes the diff tar.
pub fn run(d: &Driver, args: Args) -> Result<Outcome> {
    let parent = super::parent_or_own(d, &args.id, args.parent.clone())?;
    let bar = output::bytes_bar(None, format!("diff {}", args.id));
    let what = || format!("export the diff of layer {}", args.id);
    match &args.output {
        None => {
            let stdout = io::stdout();
            if stdout.is_terminal() {
                return Err(UsageError(
                    "refusing to write a tar to a terminal; use -o FILE or redirect stdout".into(),
                )
                .into());
            }
            let mut w = CountingWriter::new(io::BufWriter::new(stdout.lock()), bar.clone());
            d.diff(&args.id, parent.as_ref(), &mut w)
                .with_context(what)?;
            w.flush().context("write to stdout")?;
        }
        Some(path) => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => std::path::Path::new("."),
            };
            let tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("create a temporary file in {}", dir.display()))?;
            let mut w = CountingWriter::new(io::BufWriter::new(tmp.as_file()), bar.clone());
            d.diff(&args.id, parent.as_ref(), &mut w)
                .with_context(what)?;
            w.flush()
                .with_context(|| format!("write {}", tmp.path().display()))?;
            drop(w);
            tmp.persist(path)
                .with_context(|| format!("rename the tar to {}", path.display()))?;
        }
    }
    bar.finish_and_clear();
    Ok(Outcome::Ok)
}
