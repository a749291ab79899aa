//! `strata umount ID`: releases one mount of the layer; the last release unmounts.

use anyhow::{Context, Result};
use strata::{Driver, LayerId};

use super::Outcome;

/// Releases one mount.
pub fn run(d: &Driver, id: &LayerId) -> Result<Outcome> {
    d.put(id).with_context(|| format!("unmount layer {id}"))?;
    Ok(Outcome::Ok)
}
