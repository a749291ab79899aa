//! Integration tests of strata-archive: one binary, run as root (devices, owners, trusted
//! xattrs, overlay mounts). Under `STRATA_REQUIRE_ROOT=1` a missing privilege is a failure.

// Helpers outside #[test] functions unwrap too: a failing setup is a failing test.
#![allow(clippy::unwrap_used)]

mod apply;
mod changes;
mod common;
mod export;
mod hostile;
mod property;
