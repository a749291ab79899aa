//! strata: a layer store in Docker overlay2's on-disk format.
//!
//! A **home** directory holds one directory per **layer** (`<home>/<id>/diff` with the layer's
//! files, `link` with its 26-character short name, `lower` naming its parents through
//! `<home>/l/<short name> -> ../<id>/diff`). A [`Driver`] opened on a home creates and removes
//! layers, **mounts** a layer's chain as one overlay (`get`/`put`, reference counted across
//! threads and processes), and moves layer content in and out as tars (`apply_diff`, `diff`),
//! reports `changes` and sizes. A home written by Docker 20.10's overlay2 driver is a valid
//! strata home and the other way round; strata's own state lives in `<home>/.strata/`, which
//! Docker never reads.
//!
//! ```no_run
//! # fn main() -> strata::Result<()> {
//! use strata::{Driver, LayerId, Options, StorageOpts};
//! let driver = Driver::open("/var/lib/strata", Options::default())?;
//! let base: LayerId = "base".parse()?;
//! driver.create(&base, None, &StorageOpts::default())?;
//! let top: LayerId = "top".parse()?;
//! driver.create_read_write(&top, Some(&base), &StorageOpts::default())?;
//! let root = driver.get(&top, "")?; // an overlay of base's files with a writable upper
//! std::fs::write(root.join("hello"), "world").expect("write");
//! driver.put(&top)?;
//! for change in driver.changes(&top, Some(&base))? {
//!     println!("{:?} {}", change.kind, change.path);
//! }
//! # Ok(()) }
//! ```
//!
//! This crate never prints and has no async runtime; the CLI and the engine adapters wrap it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod driver;
pub mod error;
pub mod fill;
pub mod id;
pub mod layout;
pub mod lock;
pub mod mount;
#[cfg(doc)]
pub mod on_disk;
pub mod options;
pub mod probe;
pub mod quota;
pub mod staging;

pub use driver::check::{CheckReport, Problem};
pub use driver::Driver;
pub use error::{Error, Result};
pub use fill::FillGuard;
pub use id::{LayerId, LinkId};
pub use options::{Options, StorageOpts};
pub use strata_archive::{Change, ChangeKind, IdMapping, IdMaps};
