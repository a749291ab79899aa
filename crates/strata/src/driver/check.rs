//! `check` and `check --repair`: finds (and fixes) what a crash or a foreign tool can leave in a
//! home — dangling or missing short links, missing `link` files, layers whose parent is gone,
//! leftover staging directories, stale mount counts and mounts nothing references. Repair holds
//! the home lock exclusively, so no create or remove runs meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use super::Driver;
use crate::error::{Error, Result};
use crate::id::{LayerId, LinkId};
use crate::layout::{Layout, LowerChain};
use crate::lock::LockKind;
use crate::mount::refs::MountFinding;

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Machine-readable kind: `dangling-link`, `missing-link`, `missing-link-file`,
    /// `not-a-link`, `missing-parent`, `leftover-staging`, `orphan-quota-record`,
    /// `stale-mount-count`, `unreferenced-mount`.
    pub kind: String,
    /// The path concerned.
    pub path: PathBuf,
    /// What is wrong, for people.
    pub detail: String,
    /// Whether `--repair` fixed it.
    pub repaired: bool,
}

/// What `check` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// Problems, in the order found.
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// No problems found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Every problem found was repaired.
    pub fn all_repaired(&self) -> bool {
        self.problems.iter().all(|p| p.repaired)
    }
}

impl Driver {
    /// Checks the home; with `repair`, fixes what can be fixed without losing data.
    ///
    /// # Errors
    /// The home cannot be read or locked.
    pub fn check(&self, repair: bool) -> Result<CheckReport> {
        let kind = if repair {
            LockKind::Exclusive
        } else {
            LockKind::Shared
        };
        let _home = self.home_lock(kind)?;
        let layout = self.layout.clone();
        let mut report = CheckReport::default();
        let mut add = |kind: &str, path: PathBuf, detail: String, repaired: bool| {
            report.problems.push(Problem {
                kind: kind.to_owned(),
                path,
                detail,
                repaired,
            });
        };

        let layers: BTreeSet<LayerId> = self.list()?.into_iter().collect();

        // Short links: map link -> layer, and find dangling or foreign entries.
        let mut link_to_layer: BTreeMap<String, String> = BTreeMap::new();
        let ldir = layout.link_dir();
        for e in std::fs::read_dir(&ldir).map_err(Error::io("read directory", &ldir))? {
            let e = e.map_err(Error::io("read directory", &ldir))?;
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(target) = std::fs::read_link(&path) else {
                add(
                    "not-a-link",
                    path,
                    "an entry of l/ that is not a symlink".into(),
                    false,
                );
                continue;
            };
            match Layout::layer_of_link_target(&target) {
                Some(l) if layers.contains(&l) => {
                    link_to_layer.insert(name, l.to_string());
                }
                _ => {
                    let repaired = repair && std::fs::remove_file(&path).is_ok();
                    add(
                        "dangling-link",
                        path,
                        format!("points to {} which is not a layer", target.display()),
                        repaired,
                    );
                }
            }
        }
        let layer_to_link: BTreeMap<&str, &str> = link_to_layer
            .iter()
            .map(|(l, id)| (id.as_str(), l.as_str()))
            .collect();

        // Each layer's link file and short link.
        let mut valid_links: BTreeSet<String> = link_to_layer.keys().cloned().collect();
        for id in &layers {
            let lf = layout.link_file(id);
            match std::fs::read_to_string(&lf)
                .ok()
                .and_then(|s| LinkId::parse(&s).ok())
            {
                None => {
                    // Recover the id from an existing short link when there is one, so children
                    // that name it in their lower files keep working.
                    let link = layer_to_link
                        .get(id.as_str())
                        .and_then(|l| LinkId::parse(l).ok());
                    let mut repaired = false;
                    if repair {
                        let link = link.clone().unwrap_or_else(LinkId::generate);
                        let ok_link = layout.link(&link).exists()
                            || std::os::unix::fs::symlink(
                                Layout::link_target(id),
                                layout.link(&link),
                            )
                            .is_ok();
                        repaired = ok_link && std::fs::write(&lf, link.as_str()).is_ok();
                        if repaired {
                            valid_links.insert(link.to_string());
                        }
                    } else if let Some(link) = link {
                        valid_links.insert(link.to_string());
                    }
                    add(
                        "missing-link-file",
                        lf,
                        format!("layer {id} has no valid link file"),
                        repaired,
                    );
                }
                Some(link) if !valid_links.contains(link.as_str()) => {
                    let lp = layout.link(&link);
                    let repaired = repair
                        && std::fs::symlink_metadata(&lp).is_err()
                        && std::os::unix::fs::symlink(Layout::link_target(id), &lp).is_ok();
                    // Recoverable from the link file: its children are not orphans.
                    valid_links.insert(link.to_string());
                    add(
                        "missing-link",
                        lp,
                        format!("short link of layer {id} is missing"),
                        repaired,
                    );
                }
                Some(_) => {}
            }
        }

        // Lower chains naming links that do not exist: the parent is gone, the layer unusable.
        for id in &layers {
            let Ok(s) = std::fs::read_to_string(layout.lower_file(id)) else {
                continue;
            };
            let missing: Vec<String> = LowerChain::decode_each(&s)
                .into_iter()
                .filter_map(|element| match element {
                    Ok(link) if valid_links.contains(link.as_str()) => None,
                    Ok(link) => Some(Layout::relative_link(&link).display().to_string()),
                    Err(why) => Some(why),
                })
                .collect();
            if !missing.is_empty() {
                // Repair removes the layer: without its parents it can never be mounted again.
                let repaired = repair && self.remove_locked(id).is_ok();
                add(
                    "missing-parent",
                    layout.layer(id),
                    format!("layer {id} names missing lowers: {}", missing.join(", ")),
                    repaired,
                );
            }
        }

        // Leftover staging directories (a crash during create, apply or remove).
        let sdir = layout.staging();
        for e in std::fs::read_dir(&sdir).map_err(Error::io("read directory", &sdir))? {
            let path = e.map_err(Error::io("read directory", &sdir))?.path();
            let repaired = repair && std::fs::remove_dir_all(&path).is_ok();
            add(
                "leftover-staging",
                path,
                "left by an interrupted operation".into(),
                repaired,
            );
        }

        // Quota records whose layer is gone (a create killed after the quota was set).
        if let Some(quota) = &self.quota {
            for (name, projid) in quota.records()? {
                let Ok(id) = name.parse::<LayerId>() else {
                    continue;
                };
                if layers.contains(&id) {
                    continue;
                }
                let repaired = repair && quota.release(&id, &layout.layer(&id)).is_ok();
                add(
                    "orphan-quota-record",
                    layout.quota_record(&id),
                    format!("project id {projid} is recorded for {name}, which is not a layer"),
                    repaired,
                );
            }
        }

        // Mounts and counts.
        for finding in self.mounts.findings(&layers)? {
            match finding {
                MountFinding::Unreferenced { id } => {
                    let repaired = repair && {
                        let _lock = self.layer_lock(&id, LockKind::Exclusive)?;
                        self.mounts.unmount_unreferenced(&id).is_ok()
                    };
                    add(
                        "unreferenced-mount",
                        layout.merged(&id),
                        format!("layer {id} is mounted but nothing holds it"),
                        repaired,
                    );
                }
                MountFinding::StaleCount { id, stored } => {
                    let repaired = repair && {
                        let _lock = self.layer_lock(&id, LockKind::Exclusive)?;
                        self.mounts.forget(&id).is_ok()
                    };
                    add(
                        "stale-mount-count",
                        layout.mount_count(id.as_str()),
                        format!("layer {id} has a mount count of {stored} but is not mounted"),
                        repaired,
                    );
                }
            }
        }
        Ok(report)
    }
}
