//! `--prune`: with no dockerd on the data root (and its databases locked against one starting),
//! scan again and remove each orphan with the store's crash-safe remove (the directory is renamed
//! out of the home in one step, then deleted), children before parents, then the links in `l/`
//! that point nowhere. Nothing in use or kept is touched.

use crate::daemon::DaemonGuard;
use crate::error::{Error, Result};
use crate::scan::{self, Report, Target};

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Removes the orphans and dangling links of `t`; the report says what was removed.
///
/// # Errors
/// A dockerd uses the data root ([`Error::DaemonRunning`]), the scan fails, or the home cannot
/// be opened as a store. A layer that cannot be removed is not an error: the report carries it
/// (`removed: false` with the error) and the caller exits non-zero.
pub fn prune(t: &Target) -> Result<Report> {
    let _guard = DaemonGuard::acquire(&t.docker_root).map_err(|d| Error::DaemonRunning {
        root: t.docker_root.clone(),
        pid: d.pid,
        how: d.how,
    })?;
    let mut report = scan::scan_with(t, Vec::new())?;
    if report.remaining() == 0 {
        return Ok(report);
    }
    // Stale read-write layers leave the layer database first: moved into its tmp/ directory
    // (which dockerd never reads) in one rename, then deleted. A crash in between leaves their
    // layers as plain orphans for the next run.
    let db_tmp = t.docker_root.join("image/overlay2/layerdb/tmp");
    for m in &mut report.stale_mounts {
        let trash = db_tmp.join(format!(
            "strata-stale-mount-{}.{:016x}",
            m.name,
            rand_suffix()
        ));
        let moved =
            std::fs::create_dir_all(&db_tmp).and_then(|()| std::fs::rename(&m.path, &trash));
        match moved {
            Ok(()) => {
                if let Err(e) = std::fs::remove_dir_all(&trash) {
                    tracing::warn!(path = %trash.display(), "deleting a stale mount entry: {e}");
                }
                m.removed = true;
                tracing::info!(mount = %m.name, "removed stale read-write layer entry");
            }
            Err(e) => {
                tracing::warn!(path = %m.path.display(), "could not remove stale mount entry: {e}");
            }
        }
    }
    // A layer of a stale mount that could not be dropped stays referenced: not removed.
    let pinned: Vec<String> = report
        .stale_mounts
        .iter()
        .filter(|m| !m.removed)
        .flat_map(|m| std::iter::once(m.mount_id.clone()).chain(m.init_id.clone()))
        .collect();
    let state = strata::layout::Layout::new(report.home.clone()).state();
    let had_state = state.exists();
    {
        let driver =
            strata::Driver::open(&report.home, strata::Options::default()).map_err(|source| {
                Error::Store {
                    op: "open overlay2 home",
                    what: report.home.display().to_string(),
                    source: Box::new(source),
                }
            })?;
        for o in &mut report.orphans {
            if pinned.contains(&o.id) {
                o.error = Some("its layer database entry could not be removed".into());
                continue;
            }
            let id: strata::LayerId = match o.id.parse() {
                Ok(id) => id,
                Err(e) => {
                    o.error = Some(e.to_string());
                    continue;
                }
            };
            match driver.remove(&id) {
                Ok(()) => {
                    o.removed = true;
                    tracing::info!(id = %o.id, size = o.size, "removed orphaned layer");
                }
                Err(e) => {
                    let chain =
                        std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join(": ");
                    tracing::warn!(id = %o.id, "could not remove orphaned layer: {chain}");
                    o.error = Some(chain);
                }
            }
        }
    }
    // Links that pointed at a removed orphan (other than its own) now dangle too.
    let after = scan::scan_with(t, Vec::new())?;
    let mut dangling = report.dangling_links.clone();
    for d in after.dangling_links {
        if !dangling.iter().any(|x| x.name == d.name) {
            dangling.push(d);
        }
    }
    for d in &mut dangling {
        let still = std::fs::symlink_metadata(&d.path).is_ok_and(|m| m.file_type().is_symlink())
            && std::fs::metadata(&d.path).is_err();
        d.removed = if still {
            std::fs::remove_file(&d.path).is_ok()
        } else {
            // Gone already (removed with its layer), or it resolves again: nothing to do.
            std::fs::symlink_metadata(&d.path).is_err()
        };
    }
    report.dangling_links = dangling;
    // strata's private state directory is not left behind in a home strata did not own.
    if !had_state {
        let staging_empty = std::fs::read_dir(state.join("staging"))
            .map(|mut r| r.next().is_none())
            .unwrap_or(true);
        if staging_empty {
            if let Err(e) = std::fs::remove_dir_all(&state) {
                tracing::warn!(path = %state.display(), "removing strata's state directory: {e}");
            }
        }
    }
    Ok(report)
}
