//! `strata ls`: the layers, sorted, one per line; on a containerd snapshotter's root each with
//! the snapshot key it belongs to.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;
use strata::Driver;

use super::Outcome;
use crate::output::Output;

#[derive(Serialize)]
struct Layers {
    layers: Vec<String>,
    /// Layer → containerd snapshot key, on a snapshotter root only.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    snapshots: BTreeMap<String, String>,
}

/// Lists the layers.
pub fn run(d: &Driver, out: Output) -> Result<Outcome> {
    let ids = d.list().context("list layers")?;
    let data = Layers {
        layers: ids.iter().map(|i| i.to_string()).collect(),
        snapshots: strata_containerd::meta::key_hints(d.home())
            .into_iter()
            .filter(|(l, _)| ids.iter().any(|i| i.as_str() == l))
            .collect(),
    };
    out.print(&data, |w| {
        for id in &data.layers {
            match data.snapshots.get(id) {
                Some(key) => writeln!(w, "{id}\t{key}")?,
                None => writeln!(w, "{id}")?,
            }
        }
        Ok(())
    })?;
    Ok(Outcome::Ok)
}
