//! `strata containerd-snapshotter --root DIR --socket PATH`: serves containerd's snapshot API
//! (`strata_containerd::serve`) until SIGTERM or SIGINT. The root is a strata home; the global
//! `--storage-opt` options apply to it (`overlay2.size` gives every active snapshot a quota).

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::Outcome;

/// Flags of `containerd-snapshotter`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The snapshotter's root: a strata home holding the snapshots and their metadata.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// The unix socket to serve on (mode 0600); containerd's `proxy_plugins` address.
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
}

/// Serves until a stop signal.
pub fn run(args: Args, storage_opts: &[String]) -> Result<Outcome> {
    let options = strata::Options::parse(storage_opts).context("parse --storage-opt")?;
    let config = strata_containerd::Config {
        root: args.root,
        socket: args.socket,
        options,
    };
    strata_containerd::serve(&config).with_context(|| {
        format!(
            "serve the containerd snapshotter for {} on {}",
            config.root.display(),
            config.socket.display()
        )
    })?;
    Ok(Outcome::Ok)
}
