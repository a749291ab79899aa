//! `strata docker-plugin --name NAME [--socket PATH] [--header-timeout SECS] [--body-timeout
//! SECS] [--max-connections N]`: serves Docker's graphdriver plugin protocol
//! (`strata_docker::serve`) until SIGTERM or SIGINT. The home and driver options come from
//! dockerd's `GraphDriver.Init`, so `--home` and `--storage-opt` are not used.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use strata_docker::Limits;

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
    /// Seconds a connection may take to send a request head (idle kept-alive connections
    /// included); default 60.
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    pub header_timeout: Option<Duration>,
    /// Seconds a request body may pause, or a reply stay unread; default 120.
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    pub body_timeout: Option<Duration>,
    /// Connections served at once; default 128.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
}

/// A positive number of seconds, fractions allowed ("0.5").
fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!("{s:?}: the timeout must be more than 0 seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// Serves until a stop signal.
pub fn run(args: Args) -> Result<Outcome> {
    let where_ = args.socket.as_ref().map_or_else(
        || format!("{}/{}.sock", strata_docker::PLUGIN_SOCKET_DIR, args.name),
        |s| s.display().to_string(),
    );
    let defaults = Limits::default();
    let config = strata_docker::PluginConfig {
        name: args.name.clone(),
        socket: args.socket,
        limits: Limits {
            header_timeout: args.header_timeout.unwrap_or(defaults.header_timeout),
            body_timeout: args.body_timeout.unwrap_or(defaults.body_timeout),
            max_connections: args
                .max_connections
                .map_or(defaults.max_connections, |n| n as usize),
        },
    };
    strata_docker::serve(&config)
        .with_context(|| format!("serve docker plugin {} on {where_}", args.name))?;
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_accepts_fractions_and_refuses_zero_negative_and_words() {
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds("60"), Ok(Duration::from_secs(60)));
        for bad in ["0", "-1", "NaN", "inf", "soon", ""] {
            assert!(seconds(bad).is_err(), "{bad:?}");
        }
    }
}
