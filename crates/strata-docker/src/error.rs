//! The plugin's errors: [`Error`], why the server could not start or stopped (socket, runtime,
//! signals), and [`RequestError`], why one call failed. A request error never ends the server:
//! `reply::failure` turns it into the protocol's `{"Err": ...}`, in that one place.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

use crate::wire::Method;

/// Why the plugin could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plugin name cannot name a socket file.
    #[error("invalid plugin name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Another process answers on the socket.
    #[error(
        "socket {} is in use: another plugin answers on it; stop that plugin or choose another \
         --name or --socket",
        path.display()
    )]
    SocketInUse {
        /// The socket path.
        path: PathBuf,
    },
    /// The socket path exists and is not a socket, so it is not ours to replace.
    #[error("{} exists and is not a socket; remove it or choose another --socket", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// A filesystem or socket operation on the socket path failed.
    #[error("{op} {}", path.display())]
    Socket {
        /// What was done ("create directory", "bind", "remove stale socket", ...).
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The async runtime or the signal handlers could not be set up.
    #[error("{what}")]
    Runtime {
        /// What failed.
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Why one protocol call failed. Displayed with its sources (see [`chain`]) as the `Err` of the
/// reply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// No such protocol method.
    #[error("unknown plugin method {0:?}")]
    UnknownMethod(String),
    /// The protocol only uses POST.
    #[error("method {0} is not allowed: the plugin protocol uses POST")]
    NotPost(hyper::Method),
    /// The request body could not be read.
    #[error("read the request body of {method}")]
    ReadBody {
        /// The protocol method.
        method: Method,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The request body is not the JSON the method takes.
    #[error("decode the request body of {method}")]
    Decode {
        /// The protocol method.
        method: Method,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// `Init` named a relative home (dockerd always sends an absolute one).
    #[error("GraphDriver.Init: the home {home:?} is not an absolute path")]
    RelativeHome {
        /// The home as sent.
        home: String,
    },
    /// `Init` named another home while layers of the current one are mounted.
    #[error(
        "GraphDriver.Init: cannot switch from home {} to {requested}: {} layer(s) of the current \
         home are mounted (e.g. {example}); stop their containers or run GraphDriver.Cleanup \
         (`strata --home {} cleanup`) first",
        current.display(), mounted, current.display()
    )]
    HomeInUse {
        /// The home in use.
        current: PathBuf,
        /// The home `Init` asked for.
        requested: String,
        /// How many layers are mounted.
        mounted: usize,
        /// One of them.
        example: String,
    },
    /// A store call came before `GraphDriver.Init`.
    #[error("the plugin is not initialised: dockerd has not sent GraphDriver.Init yet")]
    NotInitialised,
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] strata::Error),
    /// Sending the `Diff` tar failed.
    #[error("send the diff of layer {id}")]
    SendDiff {
        /// The layer.
        id: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The blocking task died (a panic in the store).
    #[error("the {method} call did not finish")]
    Task {
        /// The protocol method.
        method: Method,
        /// The cause.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl RequestError {
    /// A failure not worth a warning: a missing layer is routine (dockerd probes and retries).
    pub(crate) fn is_routine(&self) -> bool {
        matches!(self, RequestError::Store(e) if e.is_not_found())
    }
}

/// The whole error chain on one line: `outer: cause: root cause`.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(s, ": {cause}");
        source = cause.source();
    }
    s
}
