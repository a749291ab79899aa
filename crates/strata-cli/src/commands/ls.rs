//! `strata ls`: the layers, sorted, one per line.

use anyhow::{Context, Result};
use serde::Serialize;
use strata::Driver;

use super::Outcome;
use crate::output::Output;

#[derive(Serialize)]
struct Layers {
    layers: Vec<String>,
}

/// Lists the layers.
pub fn run(d: &Driver, out: Output) -> Result<Outcome> {
    let ids = d.list().context("list layers")?;
    let data = Layers {
        layers: ids.iter().map(|i| i.to_string()).collect(),
    };
    out.print(&data, |w| {
        for id in &data.layers {
            writeln!(w, "{id}")?;
        }
        Ok(())
    })?;
    Ok(Outcome::Ok)
}
