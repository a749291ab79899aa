//! strata as a Docker storage driver: the graphdriver plugin protocol (legacy v1 plugins,
//! HTTP/1.1 on a unix socket) served on top of [`strata::Driver`].
//!
//! dockerd started with `--experimental -s NAME` finds the plugin at
//! `/run/docker/plugins/NAME.sock`, sends `Plugin.Activate`, then `GraphDriver.Init` with its
//! home (`<data-root>/NAME`) and options, and from then on one `POST /GraphDriver.<Method>` per
//! layer operation. Connections are kept alive and served concurrently; per-layer
//! serialisation is the library's. `ApplyDiff` and `Diff` stream layer tars through bounded
//! channels, so no layer is ever held in memory.
//!
//! # Shape (one file, one job; an engine adapter can copy it)
//!
//! | module | holds |
//! |---|---|
//! | [`wire`] | the protocol's bytes: the [`wire::Method`] enum (the only place a method name is spelled) and the JSON bodies |
//! | `server` | runtime, accept loop (connection cap, accept backoff), timeouts per connection, shutdown |
//! | `socket` | the socket file: path, stale/live, 0600, removal |
//! | `stall_guard` | a connection whose writes may not stall (client not reading) |
//! | `router` | one request → verb check, `Method` parsed once, body decoded, one handler, log line |
//! | `handlers/<method>.rs` | one small handler per method: decoded request in, store call on a blocking thread, `Reply` out |
//! | `reply` | `Reply` → HTTP response; `RequestError` → `{"Err": "<whole chain>"}` (the one place) |
//! | `error` | [`Error`] (serving failed) and `RequestError` (one call failed) |
//! | `plugin` | the shared state: the store the last `Init` opened, the limits |
//! | `layer_store` | the `LayerStore` trait: what handlers need from a store (a fake in the tests) |
//! | `driver_store` | `LayerStore` for [`strata::Driver`]: type conversions only |
//! | `saved_init` | the last `Init`, saved beside the socket for a restarted plugin |
//! | `body` | bounded channels between async bodies and the store's blocking `Read`/`Write`; a stream ends only with an explicit end |
//!
//! ```no_run
//! let config = strata_docker::PluginConfig {
//!     name: "strata".into(),
//!     socket: None,
//!     limits: strata_docker::Limits::default(),
//! };
//! // Blocks until SIGTERM or SIGINT, then removes the socket.
//! strata_docker::serve(&config)?;
//! # Ok::<(), strata_docker::Error>(())
//! ```
//!
//! This crate never prints (it emits `tracing` events: one `debug` line per request with the
//! method, layer id and duration; `warn` for failures), never installs a subscriber and never
//! implements layer semantics itself.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod body;
mod driver_store;
mod error;
mod handlers;
mod layer_store;
mod plugin;
mod reply;
mod router;
mod saved_init;
mod server;
mod socket;
mod stall_guard;
pub mod wire;

#[cfg(test)]
mod server_tests;

use std::path::PathBuf;
use std::time::Duration;

pub use error::Error;
pub use socket::PLUGIN_SOCKET_DIR;

/// How to serve the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig {
    /// The plugin name: what dockerd is given with `-s NAME`; names the default socket.
    pub name: String,
    /// The socket path; `None` for `/run/docker/plugins/<name>.sock`.
    pub socket: Option<PathBuf>,
    /// Timeouts and the connection cap.
    pub limits: Limits,
}

/// How long the plugin waits for a client, and how many it serves at once. A client that
/// stalls is disconnected after its timeout; whatever it was doing is abandoned and leaves
/// the layer as it was (an `ApplyDiff` cut short is not applied). dockerd never comes near
/// these limits: it sends each request at once and reads each reply as it comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a connection may wait for a complete request head: from the connect, or from
    /// the end of the previous reply on a kept-alive connection. Closes idle connections and
    /// ones that send half a head. Default 60 s.
    pub header_timeout: Duration,
    /// How long a request body may pause (no byte arriving; an `ApplyDiff` tar may take as
    /// long as it likes in total), and how long a client may leave a reply unread. Default
    /// 120 s.
    pub body_timeout: Duration,
    /// Connections served at once; further clients wait in the socket's backlog until one
    /// closes. Default 128.
    pub max_connections: usize,
}

impl Limits {
    /// Default [`Limits::header_timeout`].
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default [`Limits::body_timeout`].
    pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(120);
    /// Default [`Limits::max_connections`].
    pub const DEFAULT_MAX_CONNECTIONS: usize = 128;
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Limits::DEFAULT_HEADER_TIMEOUT,
            body_timeout: Limits::DEFAULT_BODY_TIMEOUT,
            max_connections: Limits::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves the graphdriver plugin protocol on the configured socket until SIGTERM or SIGINT,
/// then stops accepting, removes the socket and lets requests in flight finish (up to 30 s).
///
/// A stale socket file (nobody answers on it) is replaced; a live one is refused. The last
/// `GraphDriver.Init` is saved as `<socket>.strata-init`, so a plugin restarted while dockerd
/// runs reopens the same home (and the library re-derives which layers are mounted). Stopping
/// never unmounts: dockerd's `Cleanup` does that when dockerd itself stops.
///
/// # Errors
/// An invalid name, a socket in use or not a socket, a socket that cannot be bound, or a
/// runtime/signal set-up failure. Errors of single requests are protocol replies, not errors
/// of this function.
pub fn serve(config: &PluginConfig) -> Result<(), Error> {
    server::run::<strata::Driver>(config)
}
