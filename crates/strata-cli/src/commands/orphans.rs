//! `strata orphans --docker-root DIR [--home HOME] [--prune]`: the layer directories of a Docker
//! overlay2 data root that nothing refers to (see the `strata-dockerhome` crate), with their
//! sizes, and the `l/` links that point nowhere. Exits 1 while any remain, like `check`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;
use strata_dockerhome::{Report, Target};

use super::Outcome;
use crate::output::Output;

/// Flags of `orphans`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// dockerd's data root (its --data-root; /var/lib/docker by default in dockerd).
    #[arg(long, value_name = "DIR")]
    pub docker_root: PathBuf,
    /// Remove the orphans and dangling links (refused while a dockerd uses the data root).
    #[arg(long)]
    pub prune: bool,
}

/// `--home` on the command line, if it was given there: for this command the home defaults to
/// `<docker-root>/overlay2`, not to the global default.
fn explicit_home(global: &std::path::Path) -> Option<PathBuf> {
    std::env::args_os()
        .any(|a| a == "--home" || a.to_string_lossy().starts_with("--home="))
        .then(|| global.to_owned())
}

#[derive(Serialize)]
struct Json<'a> {
    pruned: bool,
    remaining: usize,
    #[serde(flatten)]
    report: &'a Report,
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Scans (and with `--prune`, cleans) the data root.
pub fn run(args: Args, global_home: &std::path::Path, out: Output) -> Result<Outcome> {
    let target = Target::new(&args.docker_root, explicit_home(global_home));
    let report = if args.prune {
        strata_dockerhome::prune(&target)
            .with_context(|| format!("prune orphaned layers of {}", args.docker_root.display()))?
    } else {
        strata_dockerhome::scan(&target)
            .with_context(|| format!("find orphaned layers of {}", args.docker_root.display()))?
    };
    let remaining = report.remaining();
    for d in &report.daemons {
        eprintln!(
            "strata: warning: dockerd (pid {}) is using {}: {}; a layer it is writing right now \
             can show as an orphan",
            d.pid,
            report.docker_root.display(),
            d.how
        );
    }
    let data = Json {
        pruned: args.prune,
        remaining,
        report: &report,
    };
    out.print(&data, |w| {
        for o in &report.orphans {
            let state = match (&o.error, o.removed) {
                (_, true) => " (removed)".to_owned(),
                (Some(e), false) => format!(" (not removed: {e})"),
                (None, false) => String::new(),
            };
            writeln!(w, "orphan {} {}{state}", o.id, human(o.size))?;
        }
        for l in &report.dangling_links {
            let state = if l.removed { " (removed)" } else { "" };
            writeln!(
                w,
                "dangling-link {} -> {}{state}",
                l.name,
                l.target.display()
            )?;
        }
        for m in &report.stale_mounts {
            let state = if m.removed { " (removed)" } else { "" };
            writeln!(
                w,
                "stale-mount {} (layer {}, no container){state}",
                m.name, m.mount_id
            )?;
        }
        for k in &report.kept {
            writeln!(w, "kept {}: {}", k.id, k.reason)?;
        }
        let n = report.orphans.len();
        let links = report.dangling_links.len();
        if n == 0 && links == 0 {
            writeln!(
                w,
                "no orphans in {} ({} layers in use)",
                report.home.display(),
                report.in_use.len()
            )
        } else if args.prune {
            let freed: u64 = report
                .orphans
                .iter()
                .filter(|o| o.removed)
                .map(|o| o.size)
                .sum();
            writeln!(
                w,
                "{n} orphan(s) and {links} dangling link(s); {} freed, {remaining} remain",
                human(freed)
            )
        } else {
            writeln!(
                w,
                "{n} orphan(s), {} reclaimable, and {links} dangling link(s); {} layers in use; \
                 run with --prune to remove them",
                human(report.reclaimable),
                report.in_use.len()
            )
        }
    })?;
    Ok(if remaining > 0 {
        Outcome::No
    } else {
        Outcome::Ok
    })
}
