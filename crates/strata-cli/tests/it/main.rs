//! The `strata` binary end to end, as root with real overlay mounts: every subcommand, exit
//! codes, `--json` shapes, cross-process mount refcounts, and `load` of archives built here.
//! Needs root; without it each test says so and passes, unless STRATA_REQUIRE_ROOT=1 (CI),
//! where it fails.

// Test helpers panic on a broken setup; that is the failure report a test wants.
#![allow(clippy::unwrap_used)]

mod archive;
mod containerd;
mod image;
mod load;
mod plugin;
mod store;
mod support;
mod tty;
