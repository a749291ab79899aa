//! `strata size ID [--parent P]`: the size of the layer's changes (Docker's DiffSize).

use anyhow::{Context, Result};
use serde::Serialize;
use strata::Driver;

use super::{Outcome, ParentArgs};
use crate::output::Output;

#[derive(Serialize)]
struct Size<'a> {
    id: &'a str,
    size: u64,
}

/// Prints the size in bytes.
pub fn run(d: &Driver, args: ParentArgs, out: Output) -> Result<Outcome> {
    let parent = super::parent_or_own(d, &args.id, args.parent.clone())?;
    let size = d
        .diff_size(&args.id, parent.as_ref())
        .with_context(|| format!("measure layer {}", args.id))?;
    let data = Size {
        id: args.id.as_str(),
        size,
    };
    out.print(&data, |w| writeln!(w, "{size}"))?;
    Ok(Outcome::Ok)
}
