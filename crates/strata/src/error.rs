//! The store's one error type. Every variant names the operation and its object (layer id,
//! path); causes ride along as `source`. Callers use the query methods, never string matching.

use std::io;
use std::path::PathBuf;

/// Errors of the strata store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A layer id that is not a single safe path component.
    #[error("invalid layer id {id:?}: {reason}")]
    InvalidId {
        /// The id as given (escaped).
        id: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A driver or storage option that is unknown or malformed.
    #[error("invalid option {option:?}: {reason}")]
    InvalidOption {
        /// The option as given.
        option: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The host cannot run the driver (an init probe failed).
    #[error("overlay2 is not supported here: {found}; {hint}")]
    NotSupported {
        /// What was found.
        found: String,
        /// What to do about it.
        hint: String,
    },
    /// The home path cannot be a home: it is not a directory.
    #[error("home {path} is not a directory: {reason}")]
    InvalidHome {
        /// The home as given.
        path: PathBuf,
        /// What was found there and what to do.
        reason: String,
    },
    /// The layer does not exist.
    #[error("layer {id} does not exist")]
    LayerNotFound {
        /// The layer.
        id: String,
    },
    /// The layer exists already.
    #[error("layer {id} already exists")]
    LayerExists {
        /// The layer.
        id: String,
    },
    /// The parent of a new layer does not exist.
    #[error("cannot create layer {id}: parent layer {parent} does not exist")]
    ParentNotFound {
        /// The layer being created.
        id: String,
        /// The missing parent.
        parent: String,
    },
    /// A new layer would make a chain deeper than the mount path allows.
    #[error(
        "cannot create layer {id}: its chain would hold {depth} layers, more than the {limit} \
         that {mount_api} can mount"
    )]
    ChainTooLong {
        /// The layer being created.
        id: String,
        /// Layers in the chain (the layer and all its parents).
        depth: usize,
        /// The limit.
        limit: usize,
        /// Which mount path sets the limit.
        mount_api: &'static str,
    },
    /// A storage option the filesystem or layer kind cannot honour.
    #[error("layer {id}: {reason}")]
    StorageOptNotSupported {
        /// The layer.
        id: String,
        /// What was found and what to do.
        reason: String,
    },
    /// A layer's on-disk metadata is malformed.
    #[error("layer {id} is damaged: {what} (run `strata check --repair`)")]
    Corrupt {
        /// The layer.
        id: String,
        /// What is wrong.
        what: String,
    },
    /// The layer, or a layer it is built on, was left incomplete by a fill that failed or was
    /// killed (see [`crate::fill`]).
    #[error(
        "{} is incomplete (an apply or load into it failed or was killed); run `strata check \
         --repair` to remove it, or apply its content again",
        which_incomplete(id, incomplete)
    )]
    Incomplete {
        /// What was refused (`mount`, `create`, `export`, `compute changes of`, `size`).
        op: &'static str,
        /// The layer the operation was asked for.
        id: String,
        /// The incomplete layer: `id` itself or one of its lowers.
        incomplete: String,
    },
    /// A layer below the layer is gone (removed with its children still there, or lost).
    #[error(
        "layer {id}: its lower layer {lower} is missing (the {position} of {depth} below it); \
         run `strata check` (`strata check --repair` removes layers whose lowers are gone)"
    )]
    MissingLower {
        /// The layer whose chain was resolved.
        id: String,
        /// The missing layer: its id when its short link still names it, else `l/<link>`.
        lower: String,
        /// Which lower, counted from the nearest ("1st", "2nd", ...).
        position: String,
        /// How many lowers the layer has.
        depth: usize,
    },
    /// A filesystem operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// The operation ("create directory", "read lower file", ...).
        op: &'static str,
        /// The path it failed on.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The overlay mount failed.
    #[error("mount overlay for layer {id} on {}", target.display())]
    Mount {
        /// The layer.
        id: String,
        /// The mount point.
        target: PathBuf,
        /// The kernel's answer.
        #[source]
        source: strata_sys::mount::MountError,
    },
    /// Applying, exporting or comparing layer content failed.
    #[error("{op} layer {id}")]
    Archive {
        /// The operation (apply, diff, changes, size).
        op: &'static str,
        /// The layer.
        id: String,
        /// The cause.
        #[source]
        source: strata_archive::Error,
    },
    /// A quota operation failed.
    #[error("quota for layer {id}: {what}")]
    Quota {
        /// The layer.
        id: String,
        /// What failed.
        what: String,
        /// The cause.
        #[source]
        source: Option<io::Error>,
    },
}

impl Error {
    /// The layer (or its parent) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::LayerNotFound { .. } | Error::ParentNotFound { .. }
        )
    }

    /// The caller gave something invalid (id, option, a chain too deep).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidId { .. }
                | Error::InvalidHome { .. }
                | Error::InvalidOption { .. }
                | Error::ChainTooLong { .. }
                | Error::StorageOptNotSupported { .. }
                | Error::LayerExists { .. }
        )
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

fn which_incomplete(id: &str, incomplete: &str) -> String {
    if id == incomplete {
        format!("layer {id}")
    } else {
        format!("layer {incomplete}, below layer {id},")
    }
}

/// The ordinal of a 1-based position ("1st", "2nd", "3rd", "11th", ...).
pub(crate) fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Result alias of the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;
