//! The crate's one error type, and the ONE place where errors become gRPC status codes
//! ([`Error::to_status`]). containerd decides what to do from the code alone (NotFound,
//! AlreadyExists, FailedPrecondition, InvalidArgument), so every variant says which it is.

use std::path::PathBuf;

/// Errors of the snapshotter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The snapshot (or a parent it names) does not exist. gRPC NotFound.
    #[error("snapshot {key:?} does not exist")]
    NotFound {
        /// The key or name.
        key: String,
    },
    /// A snapshot of that key or name exists already. gRPC AlreadyExists.
    #[error("snapshot {key:?} already exists")]
    AlreadyExists {
        /// The key or name.
        key: String,
    },
    /// The request is well formed but the snapshot is in the wrong state for it (committing a
    /// view, removing a parent, mounting a committed snapshot). gRPC FailedPrecondition.
    #[error("snapshot {key:?}: {reason}")]
    FailedPrecondition {
        /// The key or name.
        key: String,
        /// What is in the way.
        reason: String,
    },
    /// A malformed request: empty key, parent not committed, a bad filter, label or field
    /// path. gRPC InvalidArgument.
    #[error("{what}: {reason}")]
    InvalidArgument {
        /// What was given.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The layer store failed.
    #[error("{op} snapshot {key:?} (layer {layer})")]
    Store {
        /// The operation.
        op: &'static str,
        /// The snapshot.
        key: String,
        /// Its layer.
        layer: String,
        /// The cause.
        #[source]
        source: Box<strata::Error>,
    },
    /// The layer store could not be opened.
    #[error("open the layer store at {}", home.display())]
    OpenStore {
        /// The home.
        home: PathBuf,
        /// The cause.
        #[source]
        source: Box<strata::Error>,
    },
    /// The metadata database failed.
    #[error("metadata: {op}")]
    Meta {
        /// The operation.
        op: &'static str,
        /// The cause.
        #[source]
        source: Box<redb::Error>,
    },
    /// The metadata database is held by another process.
    #[error(
        "the metadata database {} is in use (is a snapshotter already serving this root?)",
        path.display()
    )]
    MetaInUse {
        /// The database file.
        path: PathBuf,
    },
    /// A stored record cannot be decoded.
    #[error("metadata: record {key:?} is damaged: {what}")]
    MetaCorrupt {
        /// The record's key.
        key: String,
        /// What is wrong.
        what: String,
    },
    /// Reading a snapshot's disk usage failed.
    #[error("measure the usage of {}", path.display())]
    Usage {
        /// Where.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The socket could not be set up.
    #[error("{op} socket {}", path.display())]
    Socket {
        /// The operation.
        op: &'static str,
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another process answers on the socket.
    #[error("socket {} is in use by a running process", path.display())]
    SocketInUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Something that is not a socket sits at the socket path.
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The async runtime or the signal handlers could not be set up, or serving failed.
    #[error("{what}")]
    Runtime {
        /// What failed.
        what: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    pub(crate) fn meta(op: &'static str) -> impl FnOnce(redb::Error) -> Error {
        move |e| Error::Meta {
            op,
            source: Box::new(e),
        }
    }

    pub(crate) fn store(
        op: &'static str,
        key: &str,
        layer: &strata::LayerId,
    ) -> impl FnOnce(strata::Error) -> Error {
        let key = key.to_owned();
        let layer = layer.to_string();
        move |source| Error::Store {
            op,
            key,
            layer,
            source: Box::new(source),
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn precondition(key: &str, reason: impl Into<String>) -> Error {
        Error::FailedPrecondition {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    /// The gRPC code containerd acts on.
    pub fn code(&self) -> tonic::Code {
        match self {
            Error::NotFound { .. } => tonic::Code::NotFound,
            Error::AlreadyExists { .. } => tonic::Code::AlreadyExists,
            Error::FailedPrecondition { .. } => tonic::Code::FailedPrecondition,
            Error::InvalidArgument { .. } => tonic::Code::InvalidArgument,
            Error::Store { source, .. } if source.is_invalid_input() => {
                tonic::Code::InvalidArgument
            }
            _ => tonic::Code::Internal,
        }
    }

    /// The status sent to containerd: the code, and the whole cause chain as the message.
    pub fn to_status(&self) -> tonic::Status {
        let mut msg = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            msg.push_str(": ");
            msg.push_str(&c.to_string());
            cause = c.source();
        }
        tonic::Status::new(self.code(), msg)
    }
}

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
