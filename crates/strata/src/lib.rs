//! strata: a layer store with Docker overlay2's on-disk format (API CONTRACT; bodies landing).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
pub mod id;
pub mod layout;
pub mod options;
pub mod quota;

pub use error::{Error, Result};
pub use id::{LayerId, LinkId};
pub use options::{Options, StorageOpts};
