//! `strata check` on a containerd snapshotter's root: the snapshotter's own view of what a
//! killed process left (its journal, records without layers), and the repair, which is the
//! same settling the snapshotter does at start and on Cleanup. Never runs while a snapshotter
//! serves the root (the database is locked).

use std::collections::HashSet;
use std::path::Path;

use strata::Options;

use crate::error::Result;
use crate::meta::{Journal, Meta};
use crate::snapshotter::Snapshotter;

/// What `strata check` adds on a snapshotter root: operations a killed snapshotter left
/// unfinished (layers journalled as being created, removed or rebased) and snapshot records
/// whose layer is missing. With `repair`, the unfinished operations are settled as the
/// snapshotter's own start and Cleanup settle them. `None` when `home` is not a snapshotter
/// root.
///
/// # Errors
/// [`crate::Error::MetaInUse`] while a snapshotter serves the root (its Cleanup does the same work);
/// a metadata or store failure.
pub fn check_root(home: &Path, repair: bool) -> Result<Option<Vec<strata::Problem>>> {
    let db = home
        .join(crate::meta::META_DIR)
        .join(crate::meta::META_FILE);
    if !db.exists() {
        return Ok(None);
    }
    let meta = Meta::open(home)?;
    let mut problems = Vec::new();
    for (layer, j) in meta.journal()? {
        let (state, key) = match &j {
            Journal::Live { .. } => continue,
            Journal::Creating { key } => ("created", key),
            Journal::Removing { key } => ("removed", key),
            Journal::Rebasing { key } => ("rebased", key),
        };
        problems.push(strata::Problem {
            kind: "interrupted-snapshot-operation".into(),
            path: home.join(&layer),
            detail: format!(
                "layer {layer} was being {state} for snapshot {key:?} when the snapshotter stopped"
            ),
            repaired: false,
        });
    }
    for (key, rec) in meta.list()? {
        if !home.join(&rec.layer).is_dir() {
            problems.push(strata::Problem {
                kind: "missing-snapshot-layer".into(),
                path: home.join(&rec.layer),
                detail: format!(
                    "snapshot {key:?} names layer {} which does not exist",
                    rec.layer
                ),
                repaired: false,
            });
        }
    }
    if repair
        && problems
            .iter()
            .any(|p| p.kind == "interrupted-snapshot-operation")
    {
        drop(meta);
        let s = Snapshotter::open(home, Options::default())?;
        let left: HashSet<String> = s
            .meta()
            .journal()?
            .into_iter()
            .filter(|(_, j)| !matches!(j, Journal::Live { .. }))
            .map(|(l, _)| l)
            .collect();
        for p in &mut problems {
            let layer = p.path.file_name().map(|n| n.to_string_lossy().into_owned());
            p.repaired = p.kind == "interrupted-snapshot-operation"
                && !layer.is_some_and(|l| left.contains(&l));
        }
    }
    Ok(Some(problems))
}
