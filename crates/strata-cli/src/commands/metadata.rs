//! `strata metadata ID`: the layer's directories as Docker's GetMetadata reports them.

use anyhow::{Context, Result};
use strata::{Driver, LayerId};

use super::Outcome;
use crate::output::Output;

/// Prints `Key=Value` lines (or one JSON object).
pub fn run(d: &Driver, id: &LayerId, out: Output) -> Result<Outcome> {
    let meta = d
        .metadata(id)
        .with_context(|| format!("read metadata of layer {id}"))?;
    out.print(&meta, |w| {
        for (k, v) in &meta {
            writeln!(w, "{k}={v}")?;
        }
        Ok(())
    })?;
    Ok(Outcome::Ok)
}
