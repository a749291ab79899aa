//! Integration tests of the snapshotter through its gRPC API, as containerd uses it: a real
//! server on a temporary unix socket, real strata layers and real overlay mounts performed
//! the way containerd performs them (legacy mount(2), with its chdir trick for long option
//! strings). Needs root (fails under STRATA_REQUIRE_ROOT=1 when not root).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod chain;
mod common;
mod contract;
mod crash;
mod process;
mod rebase;
