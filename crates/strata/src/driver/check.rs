//! `check` and `check --repair`: finds (and fixes) what a crash or a foreign tool can leave in a
//! home — layers a failed or killed fill left incomplete, dangling or missing short links,
//! missing `link` files, layers whose parent is gone, leftover staging directories, stale mount
//! counts and mounts nothing references. Repair holds the home lock exclusively, so no create or
//! remove runs meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use super::Driver;
use crate::error::{Error, Result};
use crate::fill::{self, FillState};
use crate::id::{LayerId, LinkId};
use crate::layout::{Layout, LowerChain};
use crate::lock::LockKind;
use crate::mount::refs::MountFinding;

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Machine-readable kind: `incomplete-layer`, `dangling-link`, `missing-link`,
    /// `missing-link-file`, `not-a-link`, `missing-parent`, `leftover-staging`,
    /// `orphan-quota-record`, `stale-mount-count`, `unreferenced-mount`.
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

    fn add(&mut self, kind: &str, path: PathBuf, detail: String, repaired: bool) {
        self.problems.push(Problem {
            kind: kind.to_owned(),
            path,
            detail,
            repaired,
        });
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
        let mut check = Check {
            driver: self,
            layout: &self.layout,
            repair,
            layers: self.list()?.into_iter().collect(),
            report: CheckReport::default(),
        };
        check.incomplete()?;
        let link_to_layer = check.short_links()?;
        let valid_links = check.link_files(&link_to_layer);
        check.lower_chains(&valid_links);
        check.staging()?;
        check.quota_records()?;
        check.mounts()?;
        Ok(check.report)
    }
}

/// One run of `check`: the passes, in order, each adding what it finds to the report.
struct Check<'a> {
    driver: &'a Driver,
    layout: &'a Layout,
    repair: bool,
    layers: BTreeSet<LayerId>,
    report: CheckReport,
}

impl Check<'_> {
    /// Markers nobody holds ([`crate::fill`]): a layer an apply or load left incomplete (removed
    /// on repair, before the chains are checked, so the layers built on it are found as missing
    /// their parent and removed too), or the marker of a layer that never came to exist (a load
    /// killed before creating it; removed on repair). A held marker is a fill in progress.
    fn incomplete(&mut self) -> Result<()> {
        for id in fill::marked(self.layout)? {
            if fill::state(self.layout, &id)? != FillState::Incomplete {
                continue;
            }
            if self.layers.contains(&id) {
                let repaired = self.repair
                    && self.driver.remove_locked(&id).is_ok()
                    && fill::state(self.layout, &id)? == FillState::None;
                if repaired {
                    self.layers.remove(&id);
                }
                self.report.add(
                    "incomplete-layer",
                    self.layout.layer(&id),
                    format!(
                        "layer {id} was left incomplete by an apply or load that failed or was \
                         killed; it cannot be mounted or built on (repair removes it)"
                    ),
                    repaired,
                );
            } else {
                let repaired = self.repair && fill::clear_stale(self.layout, &id).is_ok();
                self.report.add(
                    "incomplete-layer",
                    self.layout.incomplete(&id),
                    format!(
                        "marker of layer {id}, which does not exist (a load killed before \
                         creating it)"
                    ),
                    repaired,
                );
            }
        }
        Ok(())
    }

    /// Short links: which link leads to which layer; entries that are not links, and links to
    /// no layer (removed on repair). Returns link name -> layer.
    fn short_links(&mut self) -> Result<BTreeMap<String, LayerId>> {
        let mut link_to_layer = BTreeMap::new();
        let ldir = self.layout.link_dir();
        for e in std::fs::read_dir(&ldir).map_err(Error::io("read directory", &ldir))? {
            let e = e.map_err(Error::io("read directory", &ldir))?;
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(target) = std::fs::read_link(&path) else {
                self.report.add(
                    "not-a-link",
                    path,
                    "an entry of l/ that is not a symlink".into(),
                    false,
                );
                continue;
            };
            match Layout::layer_of_link_target(&target) {
                Some(l) if self.layers.contains(&l) => {
                    link_to_layer.insert(name, l);
                }
                _ => {
                    let repaired = self.repair && std::fs::remove_file(&path).is_ok();
                    self.report.add(
                        "dangling-link",
                        path,
                        format!("points to {} which is not a layer", target.display()),
                        repaired,
                    );
                }
            }
        }
        Ok(link_to_layer)
    }

    /// Each layer's `link` file and its short link: a missing link file is recovered from an
    /// existing short link (or a new one), a missing short link is recreated from the link
    /// file. Returns every link name a `lower` file may validly name.
    fn link_files(&mut self, link_to_layer: &BTreeMap<String, LayerId>) -> BTreeSet<String> {
        let layer_to_link: BTreeMap<&LayerId, &str> = link_to_layer
            .iter()
            .map(|(l, id)| (id, l.as_str()))
            .collect();
        let mut valid_links: BTreeSet<String> = link_to_layer.keys().cloned().collect();
        for id in &self.layers {
            let lf = self.layout.link_file(id);
            match std::fs::read_to_string(&lf)
                .ok()
                .and_then(|s| LinkId::parse(&s).ok())
            {
                None => {
                    // Recover the id from an existing short link when there is one, so children
                    // that name it in their lower files keep working.
                    let link = layer_to_link.get(id).and_then(|l| LinkId::parse(l).ok());
                    let mut repaired = false;
                    if self.repair {
                        let link = link.clone().unwrap_or_else(LinkId::generate);
                        let ok_link = self.layout.link(&link).exists()
                            || std::os::unix::fs::symlink(
                                Layout::link_target(id),
                                self.layout.link(&link),
                            )
                            .is_ok();
                        repaired = ok_link && std::fs::write(&lf, link.as_str()).is_ok();
                        if repaired {
                            valid_links.insert(link.to_string());
                        }
                    } else if let Some(link) = link {
                        valid_links.insert(link.to_string());
                    }
                    self.report.add(
                        "missing-link-file",
                        lf,
                        format!("layer {id} has no valid link file"),
                        repaired,
                    );
                }
                Some(link) if !valid_links.contains(link.as_str()) => {
                    let lp = self.layout.link(&link);
                    let repaired = self.repair
                        && std::fs::symlink_metadata(&lp).is_err()
                        && std::os::unix::fs::symlink(Layout::link_target(id), &lp).is_ok();
                    // Recoverable from the link file: its children are not orphans.
                    valid_links.insert(link.to_string());
                    self.report.add(
                        "missing-link",
                        lp,
                        format!("short link of layer {id} is missing"),
                        repaired,
                    );
                }
                Some(_) => {}
            }
        }
        valid_links
    }

    /// Lower chains naming links that do not exist: the parent is gone and the layer can never
    /// be mounted again, so repair removes it.
    fn lower_chains(&mut self, valid_links: &BTreeSet<String>) {
        for id in &self.layers {
            let Ok(s) = std::fs::read_to_string(self.layout.lower_file(id)) else {
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
                let repaired = self.repair && self.driver.remove_locked(id).is_ok();
                self.report.add(
                    "missing-parent",
                    self.layout.layer(id),
                    format!("layer {id} names missing lowers: {}", missing.join(", ")),
                    repaired,
                );
            }
        }
    }

    /// Leftover staging directories (a crash during create, apply or remove).
    fn staging(&mut self) -> Result<()> {
        let sdir = self.layout.staging();
        for e in std::fs::read_dir(&sdir).map_err(Error::io("read directory", &sdir))? {
            let e = e.map_err(Error::io("read directory", &sdir))?;
            let path = e.path();
            // Directories (create, apply, remove) and files (a fill marker being made).
            let repaired = self.repair
                && if e.file_type().is_ok_and(|t| t.is_dir()) {
                    std::fs::remove_dir_all(&path).is_ok()
                } else {
                    std::fs::remove_file(&path).is_ok()
                };
            self.report.add(
                "leftover-staging",
                path,
                "left by an interrupted operation".into(),
                repaired,
            );
        }
        Ok(())
    }

    /// Quota records whose layer is gone (a create killed after the quota was set).
    fn quota_records(&mut self) -> Result<()> {
        let Some(quota) = &self.driver.quota else {
            return Ok(());
        };
        for (name, projid) in quota.records()? {
            let Ok(id) = name.parse::<LayerId>() else {
                continue;
            };
            if self.layers.contains(&id) {
                continue;
            }
            let repaired = self.repair && quota.release(&id, &self.layout.layer(&id)).is_ok();
            self.report.add(
                "orphan-quota-record",
                self.layout.quota_record(&id),
                format!("project id {projid} is recorded for {name}, which is not a layer"),
                repaired,
            );
        }
        Ok(())
    }

    /// Mounts nothing references (unmounted on repair) and counts of layers not mounted
    /// (cleared on repair); the mount lifecycle module finds and fixes them.
    fn mounts(&mut self) -> Result<()> {
        for finding in self.driver.mounts.findings(&self.layers)? {
            match finding {
                MountFinding::Unreferenced { id } => {
                    let repaired = self.repair && {
                        let _lock = self.driver.layer_lock(&id, LockKind::Exclusive)?;
                        self.driver.mounts.unmount_unreferenced(&id).is_ok()
                    };
                    self.report.add(
                        "unreferenced-mount",
                        self.layout.merged(&id),
                        format!("layer {id} is mounted but nothing holds it"),
                        repaired,
                    );
                }
                MountFinding::StaleCount { id, stored } => {
                    let repaired = self.repair && {
                        let _lock = self.driver.layer_lock(&id, LockKind::Exclusive)?;
                        self.driver.mounts.forget(&id).is_ok()
                    };
                    self.report.add(
                        "stale-mount-count",
                        self.layout.mount_count(id.as_str()),
                        format!("layer {id} has a mount count of {stored} but is not mounted"),
                        repaired,
                    );
                }
            }
        }
        Ok(())
    }
}
