//! `strata docker-plugin --name NAME [--socket PATH]`: serves Docker's graphdriver plugin
//! protocol (`strata_docker::serve`) until SIGTERM or SIGINT. The home and driver options come
//! from dockerd's `GraphDriver.Init`, so `--home` and `--storage-opt` are not used.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::Outcome;

/// Flags of `docker-plugin`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plugin name dockerd is started with (`dockerd -s NAME`).
    #[arg(long)]
    pub name: String,
    /// The socket to listen on; default `/run/docker/plugins/NAME.sock`.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// Serves until a stop signal.
pub fn run(args: Args) -> Result<Outcome> {
    let where_ = args.socket.as_ref().map_or_else(
        || format!("{}/{}.sock", strata_docker::PLUGIN_SOCKET_DIR, args.name),
        |s| s.display().to_string(),
    );
    let config = strata_docker::PluginConfig {
        name: args.name.clone(),
        socket: args.socket,
    };
    strata_docker::serve(&config)
        .with_context(|| format!("serve docker plugin {} on {where_}", args.name))?;
    Ok(Outcome::Ok)
}
