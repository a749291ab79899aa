//! `strata changes ID [--parent P]`: `A /path`, `C /path`, `D /path` lines, sorted by path
//! (as `docker diff` prints them).

use anyhow::{Context, Result};
use serde::Serialize;
use strata::{ChangeKind, Driver};

use super::{Outcome, ParentArgs};
use crate::output::Output;

#[derive(Serialize)]
struct Changes {
    changes: Vec<Entry>,
}

#[derive(Serialize)]
struct Entry {
    path: String,
    kind: &'static str,
}

fn letter(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Add => "A",
        ChangeKind::Modify => "C",
        ChangeKind::Delete => "D",
    }
}

fn word(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Add => "add",
        ChangeKind::Modify => "modify",
        ChangeKind::Delete => "delete",
    }
}

/// Prints the layer's changes.
pub fn run(d: &Driver, args: ParentArgs, out: Output) -> Result<Outcome> {
    let parent = super::parent_or_own(d, &args.id, args.parent.clone())?;
    let mut changes = d
        .changes(&args.id, parent.as_ref())
        .with_context(|| format!("list the changes of layer {}", args.id))?;
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    let data = Changes {
        changes: changes
            .iter()
            .map(|c| Entry {
                path: c.path.clone(),
                kind: word(c.kind),
            })
            .collect(),
    };
    out.print(&data, |w| {
        for c in &changes {
            writeln!(w, "{} {}", letter(c.kind), c.path)?;
        }
        Ok(())
    })?;
    Ok(Outcome::Ok)
}
