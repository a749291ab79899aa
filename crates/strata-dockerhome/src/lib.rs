//! Finds and removes what a Docker overlay2 data root leaks: layer directories that no image,
//! container, build cache or mount refers to, left by a dockerd killed while it pulled, loaded or
//! built, and which neither a restart nor `docker system prune` ever removes.
//!
//! [`scan()`] reads dockerd's layer database (`image/overlay2/layerdb`), BuildKit's bbolt
//! databases (`buildkit/*.db`, through the read-only reader in [`bolt`]) and the mount table,
//! and sorts every directory of the home into in use, orphan or kept (not provably an orphan,
//! with the reason). [`prune()`] removes the orphans with the store's crash-safe remove, only
//! while no dockerd uses the data root ([`daemon`]). Used by `strata orphans`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bolt;
pub mod daemon;
pub mod error;
mod prune;
pub mod scan;

pub use error::{Error, Result};
pub use prune::prune;
pub use scan::{scan, Report, Target};

#[cfg(test)]
mod tests;
