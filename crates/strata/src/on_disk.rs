//! # Docker overlay2's home, byte for byte
//!
//! Documentation only: what a home looks like on disk, as Docker 20.10's overlay2 driver writes
//! it and as strata reads and writes it. Nothing here is code: [`crate::layout`] is the one
//! place that builds these paths and encodes and decodes these files.
//!
//! ```text
//! <home>/
//!   l/                          0700
//!     <LINK> -> ../<id>/diff    one symlink per layer; LINK is 26 characters of A-Z0-9
//!   <id>/                       0700, one per layer
//!     diff/                     0755, the layer's files (the overlay upper)
//!     link                      0644, the layer's LINK with no trailing newline
//!     lower                     0644, only for layers with a parent: "l/<LINK>:l/<LINK>..."
//!                               listing every parent, nearest first, no trailing newline
//!     work/                     0700, only for layers with a parent (overlay's workdir)
//!     merged/                   0700, exists while the layer is mounted
//!     committed                 0600, empty; written into a parent when a child is created
//! ```
//!
//! - Why 26-character links: Docker chose the length so that 128 entries of `l/<LINK>:` fit in
//!   one page of legacy mount data with room for an SELinux label (see [`crate::id::LINK_ID_LEN`]).
//! - `committed`: Docker 20.10 mounts a layer carrying it read-only, with its own `diff` as the
//!   top lower and no upper; strata does the same, so a base image layer cannot be changed by
//!   mistake through `get`.
//! - A layer without `lower` is not mounted at all: `get` returns its `diff`.
//! - dockerd itself reads nothing of the home but what `GetMetadata` returns and the paths `Get`
//!   returns; its own records live beside the home (`image/overlay2/layerdb`).
//! - strata adds only `<home>/.strata/` (see [`crate::layout`]); no layer id can start with `.`,
//!   and Docker's driver never lists the home.
