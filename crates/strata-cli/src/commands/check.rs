//! `strata check [--repair]`: like fsck, exits 1 while problems remain. Without `--repair`
//! any problem found means 1; with it, 1 only if something could not be repaired. On a
//! containerd snapshotter's root it also checks (and settles) the snapshotter's interrupted
//! operations (`strata_containerd::check_root`).

use anyhow::{Context, Result};
use serde::Serialize;
use strata::{CheckReport, Driver};

use super::Outcome;
use crate::output::Output;

/// Flags of `check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Fix what can be fixed without losing data.
    #[arg(long)]
    pub repair: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    clean: bool,
    repaired_all: bool,
    #[serde(flatten)]
    report: &'a CheckReport,
}

/// Checks (and repairs) the home.
pub fn run(d: &Driver, args: Args, out: Output) -> Result<Outcome> {
    // On a containerd snapshotter's root, its interrupted operations first (repair settles
    // them before the store's own repair looks at what is left).
    let snapshots = match strata_containerd::check_root(d.home(), args.repair) {
        Ok(p) => p.unwrap_or_default(),
        Err(e @ strata_containerd::Error::MetaInUse { .. }) => {
            tracing::warn!("{e}; its own start and Cleanup settle interrupted snapshot operations");
            Vec::new()
        }
        Err(e) => {
            return Err(e).with_context(|| format!("check snapshots in {}", d.home().display()))
        }
    };
    let mut report = d
        .check(args.repair)
        .with_context(|| format!("check home {}", d.home().display()))?;
    report.problems.splice(0..0, snapshots);
    let remaining = if args.repair {
        !report.all_repaired()
    } else {
        !report.is_clean()
    };
    let data = Report {
        clean: report.is_clean(),
        repaired_all: report.all_repaired(),
        report: &report,
    };
    out.print(&data, |w| {
        for p in &report.problems {
            let fixed = if p.repaired { " (repaired)" } else { "" };
            writeln!(w, "{} {}: {}{fixed}", p.kind, p.path.display(), p.detail)?;
        }
        let n = report.problems.len();
        let fixed = report.problems.iter().filter(|p| p.repaired).count();
        match (n, args.repair) {
            (0, _) => writeln!(w, "no problems found"),
            (_, false) => writeln!(w, "{n} problem(s) found; run with --repair to fix"),
            (_, true) => writeln!(w, "{n} problem(s) found, {fixed} repaired"),
        }
    })?;
    Ok(if remaining { Outcome::No } else { Outcome::Ok })
}
