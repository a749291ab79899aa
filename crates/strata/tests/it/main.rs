//! Root integration tests of the store with real overlay mounts.
#![allow(clippy::unwrap_used)]

mod archive;
mod conformance;
mod crash;
mod incomplete;
mod interleave;
mod layers;
mod mounts;
mod repair;
