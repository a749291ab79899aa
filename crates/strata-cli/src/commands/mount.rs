//! `strata mount ID`: mounts the layer (one more user of its refcounted mount) and prints its
//! root. The mount outlives the process; `strata umount` releases it.

use anyhow::{Context, Result};
use serde::Serialize;
use strata::{Driver, LayerId};

use super::Outcome;
use crate::output::Output;

#[derive(Serialize)]
struct Mounted<'a> {
    id: &'a str,
    path: &'a std::path::Path,
}

/// Mounts the layer and prints where.
pub fn run(d: &Driver, id: &LayerId, out: Output) -> Result<Outcome> {
    let path = d.get(id, "").with_context(|| format!("mount layer {id}"))?;
    let data = Mounted {
        id: id.as_str(),
        path: &path,
    };
    out.print(&data, |w| writeln!(w, "{}", path.display()))?;
    Ok(Outcome::Ok)
}
