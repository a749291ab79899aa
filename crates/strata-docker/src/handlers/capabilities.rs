//! `GraphDriver.Capabilities`: strata's `Diff` is not the original tar, so dockerd rebuilds
//! layer tars from its own tar-split data.

use crate::reply::Reply;
use crate::wire::{Capabilities, CapabilitiesResponse};

/// `{"Capabilities":{"ReproducesExactDiffs":false}}`.
pub(crate) fn handle() -> Reply {
    Reply::json(&CapabilitiesResponse {
        capabilities: Capabilities {
            reproduces_exact_diffs: false,
        },
    })
}
