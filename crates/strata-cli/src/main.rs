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
            if !e.use_stderr() {
                let _ = e.print();
                return ExitCode::from(exit::OK);
            }
            let _ = writeln!(std::io::stderr(), "strata: error: {}", one_line_usage(&e));
            return ExitCode::from(exit::USAGE);
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

/// clap's several-line usage error as the one line docs/cli.md promises: the message, with
/// its indented parts joined, then the usage line.
fn one_line_usage(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut message = Vec::new();
    let mut usage = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(u) = line.strip_prefix("Usage:") {
            usage = Some(u.trim().to_owned());
        } else if line.starts_with("For more information") {
            continue;
        } else if let Some(tip) = line.strip_prefix("tip:") {
            message.push(format!("({})", tip.trim()));
        } else if usage.is_none() {
            message.push(
                line.strip_prefix("error:")
                    .unwrap_or(line)
                    .trim()
                    .to_owned(),
            );
        }
    }
    let mut out = message.join(" ");
    if let Some(u) = usage {
        out.push_str(&format!(" (usage: {u}; see --help)"));
    }
    out
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
