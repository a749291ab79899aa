//! The `strata` command: a thin shell over the strata libraries. Each subcommand (one file in
//! `commands/`) parses its arguments, makes one or two library calls and prints the result:
//! `strata::Driver` for the layer store (create, remove, get/put, apply_diff, diff, changes,
//! diff_size, status, metadata, cleanup, check), `strata_image::Archive` for `load`, and
//! `strata_docker::serve` for `docker-plugin`, `strata_containerd::serve` for
//! `containerd-snapshotter`.
//!
//! `main` has one shape: parse, run, map the outcome to a documented exit code (see `exit.rs`
//! and docs/cli.md). Data goes to stdout, errors (the whole cause chain) and progress to stderr;
//! a closed stdout (`strata ls | head -1`) ends the command quietly with 0.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod exit;
mod output;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; everything else clap refuses is usage.
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing();
    match commands::run(cli) {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(err) if exit::is_broken_pipe(&err) => ExitCode::from(exit::OK),
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "strata: error: {err:#}");
            ExitCode::from(exit::code_of(&err))
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `warn`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour only for people: a log file or journald gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}
