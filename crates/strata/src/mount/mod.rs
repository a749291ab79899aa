//! Overlay mounts of layers: what to mount (a pure plan), doing it, and reference counts that
//! hold across threads, processes and restarts.

pub mod plan;
pub mod refs;

pub(crate) mod exec;
