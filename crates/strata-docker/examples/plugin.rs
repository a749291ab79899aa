//! A minimal plugin binary for the end-to-end tests when the `strata` CLI is not at hand:
//! `plugin NAME [SOCKET]`, logging to stderr as `RUST_LOG` says. The real entry point is
//! `strata docker-plugin --name NAME [--socket PATH]`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let mut args = std::env::args().skip(1);
    let Some(name) = args.next() else {
        eprintln!("usage: plugin NAME [SOCKET]");
        return ExitCode::from(2);
    };
    let config = strata_docker::PluginConfig {
        name,
        socket: args.next().map(PathBuf::from),
        limits: strata_docker::Limits::default(),
    };
    match strata_docker::serve(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                msg.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("plugin: {msg}");
            ExitCode::FAILURE
        }
    }
}
