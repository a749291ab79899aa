//! The error of starting and running the plugin server (socket, runtime, signals). Errors of
//! single requests never end the server: they become protocol replies in `routes`.

use std::io;
use std::path::PathBuf;

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
