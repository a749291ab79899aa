//! Which layers are built on a layer: every layer whose `lower` chain names the layer's short
//! link. moby's driver never asks (dockerd's layer store knows the tree); the CLI does, so that
//! `strata rm` can refuse to pull a layer out from under its children.

use crate::error::Result;
use crate::id::LayerId;

use super::Driver;

impl Driver {
    /// The layers whose chain contains `id` (direct children and their descendants), sorted.
    ///
    /// # Errors
    /// The layer does not exist, or the home cannot be read.
    pub fn dependents(&self, id: &LayerId) -> Result<Vec<LayerId>> {
        self.ensure_exists(id)?;
        let link = self.link_of(id)?;
        let mut out = Vec::new();
        for other in self.list()? {
            if &other == id {
                continue;
            }
            // A layer whose lower file is unreadable is not ours to judge here; `check` reports it.
            let Ok(chain) = self.lowers(&other) else {
                continue;
            };
            if chain.0.contains(&link) {
                out.push(other);
            }
        }
        Ok(out)
    }
}
