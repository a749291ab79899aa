//! `strata rm [--force] ID`: removes a layer; removing a missing layer succeeds (as the store
//! does). A layer that other layers are built on is refused unless `--force`: removing it
//! leaves them unmountable. (The plugin path keeps moby's semantics: dockerd knows its tree.)

use anyhow::{Context, Result};
use strata::{Driver, LayerId};

use super::{parse_id, Outcome};
use crate::exit::UsageError;

/// Flags of `rm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The layer id.
    #[arg(value_parser = parse_id)]
    pub id: LayerId,
    /// Remove the layer even when other layers are built on it (they will no longer mount).
    #[arg(long)]
    pub force: bool,
}

/// Removes the layer.
pub fn run(d: &Driver, args: Args) -> Result<Outcome> {
    let id = &args.id;
    if !args.force && d.exists(id) {
        let dependents = d
            .dependents(id)
            .with_context(|| format!("find the layers built on layer {id}"))?;
        if !dependents.is_empty() {
            let names: Vec<&str> = dependents.iter().map(LayerId::as_str).collect();
            let shown = if names.len() > 5 {
                format!("{} and {} more", names[..5].join(", "), names.len() - 5)
            } else {
                names.join(", ")
            };
            return Err(UsageError(format!(
                "layer {id} has {} layer(s) built on it ({shown}); remove those first, or pass \
                 --force to remove it anyway (they will no longer mount)",
                names.len()
            ))
            .into());
        }
    }
    d.remove(id).with_context(|| format!("remove layer {id}"))?;
    Ok(Outcome::Ok)
}
