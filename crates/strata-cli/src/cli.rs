//! The command line: global flags and the subcommand list. Spellings here are a contract
//! (scripts rely on them); each subcommand's own flags live beside its code in `commands/`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands;

/// strata: a layer store with Docker overlay2's on-disk format.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, max_term_width = 100)]
pub struct Cli {
    /// The store's home directory.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/var/lib/strata"
    )]
    pub home: PathBuf,

    /// A driver option (overlay2.size, overlay2.inodes, overlay2.override_kernel_check);
    /// repeat for several.
    #[arg(long = "storage-opt", global = true, value_name = "KEY=VAL")]
    pub storage_opt: Vec<String>,

    /// Print data as JSON (one document on stdout) instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what the driver probed (backing filesystem, d_type, native diff, ...).
    Status,
    /// Create a layer (read-only image kind, or with --rw a container layer).
    Create(commands::create::Args),
    /// Remove a layer (succeeds if it does not exist).
    Rm(commands::IdArg),
    /// Exit 0 if the layer exists, 1 if not.
    Exists(commands::IdArg),
    /// List the layers, sorted.
    Ls,
    /// Mount a layer (refcounted across processes) and print its root.
    Mount(commands::IdArg),
    /// Release one mount of a layer; the last release unmounts.
    Umount(commands::IdArg),
    /// Print a layer's WorkDir, MergedDir, UpperDir and LowerDir.
    Metadata(commands::IdArg),
    /// Unmount everything mounted from this home.
    Cleanup,
    /// Check the home for damage; with --repair, fix it.
    Check(commands::check::Args),
    /// Apply a layer tar (plain, gzip or zstd) into a layer; print its size.
    Apply(commands::apply::Args),
    /// Write a layer's changes against its parent as a tar.
    Diff(commands::diff::Args),
    /// List a layer's changes against its parent (A, C, D per path).
    Changes(commands::ParentArgs),
    /// Print the size of a layer's changes against its parent.
    Size(commands::ParentArgs),
    /// Load a docker-save or OCI image archive (or OCI layout directory); print the top layer.
    Load(commands::load::Args),
    /// Serve Docker's graphdriver plugin protocol until SIGTERM or SIGINT.
    DockerPlugin(commands::docker_plugin::Args),
    /// Serve containerd's snapshot API (a proxy snapshotter) until SIGTERM or SIGINT.
    ContainerdSnapshotter(commands::containerd_snapshotter::Args),
}
