//! strata as a containerd snapshotter: containerd's `containerd.services.snapshots.v1.Snapshots`
//! gRPC API on a unix socket, served on top of a [`strata::Driver`] home.
//!
//! containerd reaches it as a proxy plugin (`[proxy_plugins.strata] type = "snapshot"`). Every
//! snapshot is a strata layer (`<root>/snap-<n>`, Docker overlay2's `diff/` + `l/` format), and
//! its metadata (key → layer, kind, parent, labels, times, usage) lives in an embedded
//! transactional database beside it ([`meta`]). A request is decoded ([`service`]), run as one
//! blocking [`Snapshotter`] call, and answered; mounts are the store's own mount plan rendered
//! as descriptions that containerd performs itself ([`mounts`]); List filters use containerd's
//! filter language ([`filters`]).
//!
//! ```no_run
//! let config = strata_containerd::Config {
//!     root: "/var/lib/strata-containerd".into(),
//!     socket: "/run/strata/containerd.sock".into(),
//!     options: strata::Options::default(),
//! };
//! // Blocks until SIGTERM or SIGINT, then removes the socket.
//! strata_containerd::serve(&config)?;
//! # Ok::<(), strata_containerd::Error>(())
//! ```
//!
//! This crate never prints (one `debug` event per request with the RPC, key, duration and
//! code), never installs a tracing subscriber, and never mounts: containerd does.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod check;
mod error;
pub mod filters;
pub mod meta;
pub mod mounts;
pub mod proto;
mod server;
pub mod service;
mod snapshotter;
mod socket;
pub mod usage;

use std::path::PathBuf;

pub use check::check_root;
pub use error::{Error, Result};
pub use server::Server;
pub use snapshotter::{
    Snapshotter, LABEL_MAX_SIZE, LABEL_SNAPSHOT_REF, LABEL_STRATA_SIZE, MAX_LABEL_BYTES,
};

/// How to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The snapshotter's root: a strata home (created when missing).
    pub root: PathBuf,
    /// The unix socket to listen on (mode 0600).
    pub socket: PathBuf,
    /// Driver options (`overlay2.size` sets a default size for every active snapshot).
    pub options: strata::Options,
}

/// Serves the snapshot API on `config.socket` until SIGTERM or SIGINT, then stops accepting,
/// removes the socket and lets requests in flight finish (bounded).
///
/// A stale socket file is replaced, a live one refused. Opening reclaims whatever a killed
/// process left unfinished before the socket appears.
///
/// # Errors
/// The store or metadata cannot be opened (another snapshotter serves this root), the socket
/// cannot be bound, or the runtime cannot start.
pub fn serve(config: &Config) -> Result<()> {
    server::serve(config)
}
