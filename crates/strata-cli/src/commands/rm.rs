//! `strata rm ID`: removes a layer; removing a missing layer succeeds (as the store does).

use anyhow::{Context, Result};
use strata::{Driver, LayerId};

use super::Outcome;

/// Removes the layer.
pub fn run(d: &Driver, id: &LayerId) -> Result<Outcome> {
    d.remove(id).with_context(|| format!("remove layer {id}"))?;
    Ok(Outcome::Ok)
}
