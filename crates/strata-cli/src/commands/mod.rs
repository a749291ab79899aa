//! One module per subcommand; `run` opens the store and dispatches. Shared argument shapes
//! (a layer id; a layer id with `--parent`) live here.

pub mod apply;
pub mod changes;
pub mod check;
pub mod cleanup;
pub mod containerd_snapshotter;
pub mod create;
pub mod diff;
pub mod docker_plugin;
pub mod exists;
pub mod load;
pub mod ls;
pub mod metadata;
pub mod mount;
pub mod rm;
pub mod size;
pub mod status;
pub mod umount;

use std::path::Path;

use anyhow::{Context, Result};
use strata::{Driver, LayerId, Options};

use crate::cli::{Cli, Command};
use crate::exit;
use crate::output::Output;

/// How a command ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// A negative answer: exit 1.
    No,
}

impl Outcome {
    /// The exit code.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Ok => exit::OK,
            Outcome::No => exit::NO,
        }
    }
}

/// Parses a layer id for clap; the store's message says what is wrong.
pub fn parse_id(s: &str) -> Result<LayerId, String> {
    s.parse::<LayerId>().map_err(|e| e.to_string())
}

/// A subcommand that takes just a layer id.
#[derive(Debug, clap::Args)]
pub struct IdArg {
    /// The layer id.
    #[arg(value_parser = parse_id)]
    pub id: LayerId,
}

/// A layer id and the layer to compare it against.
#[derive(Debug, clap::Args)]
pub struct ParentArgs {
    /// The layer id.
    #[arg(value_parser = parse_id)]
    pub id: LayerId,
    /// Compare against this layer instead of the layer's own parent.
    #[arg(long, value_parser = parse_id)]
    pub parent: Option<LayerId>,
}

/// The layer `--parent` names, or else the layer's own parent: Docker always hands the driver
/// the real parent, and the store reads `None` as "against an empty layer".
pub fn parent_or_own(d: &Driver, id: &LayerId, given: Option<LayerId>) -> Result<Option<LayerId>> {
    if given.is_some() {
        return Ok(given);
    }
    d.parent(id)
        .with_context(|| format!("find the parent of layer {id}"))
}

fn open_driver(home: &Path, storage_opts: &[String]) -> Result<Driver> {
    let options = Options::parse(storage_opts).context("parse --storage-opt")?;
    Driver::open(home, options).with_context(|| format!("open home {}", home.display()))
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<Outcome> {
    let out = Output::new(cli.json);
    // The plugin opens its home when dockerd sends GraphDriver.Init, not before.
    if let Command::DockerPlugin(args) = cli.command {
        return docker_plugin::run(args);
    }
    if let Command::ContainerdSnapshotter(args) = cli.command {
        return containerd_snapshotter::run(args, &cli.storage_opt);
    }
    let driver = open_driver(&cli.home, &cli.storage_opt)?;
    let d = &driver;
    match cli.command {
        Command::Status => status::run(d, out),
        Command::Create(args) => create::run(d, args),
        Command::Rm(a) => rm::run(d, &a.id),
        Command::Exists(a) => exists::run(d, &a.id, out),
        Command::Ls => ls::run(d, out),
        Command::Mount(a) => mount::run(d, &a.id, out),
        Command::Umount(a) => umount::run(d, &a.id),
        Command::Metadata(a) => metadata::run(d, &a.id, out),
        Command::Cleanup => cleanup::run(d),
        Command::Check(args) => check::run(d, args, out),
        Command::Apply(args) => apply::run(d, args, out),
        Command::Diff(args) => diff::run(d, args),
        Command::Changes(args) => changes::run(d, args, out),
        Command::Size(args) => size::run(d, args, out),
        Command::Load(args) => load::run(d, args, out),
        Command::DockerPlugin(_) | Command::ContainerdSnapshotter(_) => {
            unreachable!("served above")
        }
    }
}
