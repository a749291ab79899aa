//! The scan: every directory of the overlay2 home is a candidate; it is **in use** when dockerd's
//! layer database names it (an image layer's `cache-id`, a container's `mount-id` or
//! `init-id`), when BuildKit's metadata holds its id, when it is mounted or appears in a mount's
//! options, or when it is a lower layer of a layer in use. What is left is an **orphan**, unless
//! something makes the scan unsure (an unreadable layer database entry, a name that is not a
//! layer id), and then it is **kept**, with the reason. With no dockerd running, a read-write
//! layer entry of the layer database whose container is gone is a **stale mount** and does not
//! count. Reads only; never writes to the data root.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use strata::LayerId;

use crate::bolt;
use crate::daemon::{self, Daemon};
use crate::error::{Error, Result};

/// Where to look.
#[derive(Debug, Clone)]
pub struct Target {
    /// dockerd's data root (`/var/lib/docker`).
    pub docker_root: PathBuf,
    /// The overlay2 home (`<docker_root>/overlay2`).
    pub home: PathBuf,
}

impl Target {
    /// The data root and its default home, `<docker_root>/overlay2`.
    pub fn new(docker_root: impl Into<PathBuf>, home: Option<PathBuf>) -> Target {
        let docker_root = docker_root.into();
        let home = home.unwrap_or_else(|| docker_root.join("overlay2"));
        Target { docker_root, home }
    }

    fn layerdb(&self) -> PathBuf {
        self.docker_root.join("image/overlay2/layerdb")
    }
}

/// Why a layer is in use: what refers to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reference {
    /// An image layer in dockerd's layer database (`layerdb/sha256/<chain id>/cache-id`).
    ImageLayer {
        /// The layer's chain id.
        chain_id: String,
    },
    /// A container's read-write layer (`layerdb/mounts/<container>/mount-id`).
    Container {
        /// The container id.
        container: String,
    },
    /// A container's init layer (`layerdb/mounts/<container>/init-id`).
    ContainerInit {
        /// The container id.
        container: String,
    },
    /// A read-write layer in the layer database with no container, while a dockerd runs (the
    /// legacy builder mounts one per build step).
    MountWithoutContainer {
        /// The name of the mount in `layerdb/mounts/`.
        mount: String,
    },
    /// A layer a running dockerd is registering (`layerdb/tmp/<write set>/cache-id`).
    BeingRegistered {
        /// The write set directory.
        write_set: String,
    },
    /// The id occurs in BuildKit's metadata.
    Buildkit {
        /// The file under `<docker_root>/buildkit/`.
        file: String,
    },
    /// Mounted, or named by a mount's options.
    Mounted {
        /// The mount point.
        mount_point: PathBuf,
    },
    /// A lower (parent) layer of a layer in use or kept.
    LowerOf {
        /// The child layer.
        layer: String,
    },
}

/// A layer directory in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InUse {
    /// The layer id (the directory name).
    pub id: String,
    /// What refers to it (every reference found).
    pub by: Vec<Reference>,
}

/// A layer directory nothing refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Orphan {
    /// The layer id (the directory name).
    pub id: String,
    /// Its path.
    pub path: PathBuf,
    /// Bytes allocated on disk by its files (what removing it frees).
    pub size: u64,
    /// `l/` links that point at it (removed with it).
    pub links: Vec<String>,
    /// Whether `--prune` removed it.
    pub removed: bool,
    /// Why `--prune` could not remove it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An entry of the home that might be an orphan but is kept, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// The entry's name.
    pub id: String,
    /// Its path.
    pub path: PathBuf,
    /// Why it is kept.
    pub reason: String,
}

/// A read-write layer that dockerd's layer database still lists although no container owns it
/// (`layerdb/mounts/<name>` with no `containers/<name>`): left by a dockerd killed during a
/// legacy build step. Its layers are orphans; `--prune` removes this entry first, which also
/// lets dockerd release the image layers it pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleMount {
    /// The mount's name (a container id, or a random id of the builder's).
    pub name: String,
    /// `layerdb/mounts/<name>`.
    pub path: PathBuf,
    /// Its read-write layer.
    pub mount_id: String,
    /// Its init layer, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_id: Option<String>,
    /// Whether `--prune` removed the entry.
    pub removed: bool,
}

/// A link in `l/` whose layer does not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DanglingLink {
    /// The link's name.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
    /// Where it points.
    pub target: PathBuf,
    /// Whether `--prune` removed it.
    pub removed: bool,
}

/// How a file of BuildKit's was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildkitFile {
    /// Its path.
    pub path: PathBuf,
    /// `bolt` (the live keys and values of a bbolt database were searched) or `bytes` (not a
    /// readable bbolt file: every byte was searched, which keeps more).
    pub read_as: &'static str,
    /// Why it was not read as bbolt, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What the scan found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The data root.
    pub docker_root: PathBuf,
    /// The overlay2 home.
    pub home: PathBuf,
    /// dockerd processes using the data root (then layers being written may show as orphans,
    /// and `--prune` refuses).
    pub daemons: Vec<Daemon>,
    /// Orphaned layer directories, deepest first (the order they are removed in).
    pub orphans: Vec<Orphan>,
    /// Links in `l/` that point at no layer.
    pub dangling_links: Vec<DanglingLink>,
    /// Read-write layers of the layer database that no container owns.
    pub stale_mounts: Vec<StaleMount>,
    /// Entries that are not provably orphans, with the reason.
    pub kept: Vec<Kept>,
    /// Layers in use, with what refers to them.
    pub in_use: Vec<InUse>,
    /// Sum of the orphans' sizes.
    pub reclaimable: u64,
    /// The BuildKit files read.
    pub buildkit_files: Vec<BuildkitFile>,
    /// Things that made the scan unsure (each one keeps every candidate).
    pub doubts: Vec<String>,
}

impl Report {
    /// Orphans and dangling links that are still there (not removed).
    pub fn remaining(&self) -> usize {
        self.orphans.iter().filter(|o| !o.removed).count()
            + self.dangling_links.iter().filter(|l| !l.removed).count()
            + self.stale_mounts.iter().filter(|m| !m.removed).count()
    }
}

fn read_trimmed(p: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(p)?.trim().to_owned())
}

fn dir_names(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(Error::io("read directory", dir))? {
        let e = e.map_err(Error::io("read directory", dir))?;
        out.push(e.file_name().to_string_lossy().into_owned());
    }
    out.sort();
    Ok(out)
}

/// References from dockerd's layer database. Unreadable entries become doubts.
fn layerdb_refs(
    t: &Target,
    daemon_running: bool,
    refs: &mut BTreeMap<String, BTreeSet<Reference>>,
    doubts: &mut Vec<String>,
    stale: &mut Vec<StaleMount>,
) -> Result<()> {
    let db = t.layerdb();
    if !db.is_dir() {
        return Err(Error::NotADockerRoot {
            root: t.docker_root.clone(),
            why: format!("{} does not exist", db.display()),
        });
    }
    let mut add = |id: String, r: Reference| {
        refs.entry(id).or_default().insert(r);
    };
    let sha = db.join("sha256");
    if sha.is_dir() {
        for chain in dir_names(&sha)? {
            let p = sha.join(&chain).join("cache-id");
            match read_trimmed(&p) {
                Ok(id) if !id.is_empty() => add(id, Reference::ImageLayer { chain_id: chain }),
                Ok(_) => doubts.push(format!("{} is empty", p.display())),
                Err(e) => doubts.push(format!("{} cannot be read: {e}", p.display())),
            }
        }
    }
    // Read-write layers: a container's (named by the container id), or one the legacy builder
    // mounts for the length of a build step (a random name, no container). One whose container
    // is gone is dead once no dockerd runs: dockerd never releases it, and it pins its image's
    // layers. Without a containers/ directory to check against, every one counts.
    let mounts = db.join("mounts");
    let containers = t.docker_root.join("containers");
    let can_judge = containers.is_dir();
    if mounts.is_dir() {
        for c in dir_names(&mounts)? {
            let p = mounts.join(&c).join("mount-id");
            let mount_id = match read_trimmed(&p) {
                Ok(id) if !id.is_empty() => Some(id),
                Ok(_) => {
                    doubts.push(format!("{} is empty", p.display()));
                    None
                }
                Err(e) => {
                    doubts.push(format!("{} cannot be read: {e}", p.display()));
                    None
                }
            };
            // A container created with no init layer has no init-id.
            let init_id = read_trimmed(&mounts.join(&c).join("init-id"))
                .ok()
                .filter(|s| !s.is_empty());
            let owned = !can_judge || containers.join(&c).is_dir();
            if !owned && !daemon_running {
                if let Some(mount_id) = mount_id {
                    stale.push(StaleMount {
                        path: mounts.join(&c),
                        name: c,
                        mount_id,
                        init_id,
                        removed: false,
                    });
                }
                continue;
            }
            if let Some(id) = mount_id {
                let r = if owned {
                    Reference::Container {
                        container: c.clone(),
                    }
                } else {
                    Reference::MountWithoutContainer { mount: c.clone() }
                };
                add(id, r);
            }
            if let Some(id) = init_id {
                add(id, Reference::ContainerInit { container: c });
            }
        }
    }
    // Write sets of layers being registered. With no daemon running they are dead: dockerd
    // never reads them back, and the layer they name is an orphan.
    let tmp = db.join("tmp");
    if daemon_running && tmp.is_dir() {
        for w in dir_names(&tmp)? {
            if let Ok(id) = read_trimmed(&tmp.join(&w).join("cache-id")) {
                add(id, Reference::BeingRegistered { write_set: w });
            }
        }
    }
    Ok(())
}

/// The searchable bytes of each top-level file of `<docker_root>/buildkit/`.
fn buildkit_data(t: &Target) -> Result<Vec<(BuildkitFile, Vec<u8>)>> {
    let dir = t.docker_root.join("buildkit");
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    for name in dir_names(&dir)? {
        let path = dir.join(&name);
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let data = std::fs::read(&path).map_err(Error::io("read BuildKit file", &path))?;
        if bolt::looks_like_bolt(&data) {
            match bolt::live_bytes(&data) {
                Ok(live) => {
                    out.push((
                        BuildkitFile {
                            path,
                            read_as: "bolt",
                            note: None,
                        },
                        live,
                    ));
                    continue;
                }
                Err(e) => {
                    out.push((
                        BuildkitFile {
                            path,
                            read_as: "bytes",
                            note: Some(e.to_string()),
                        },
                        data,
                    ));
                    continue;
                }
            }
        }
        out.push((
            BuildkitFile {
                path,
                read_as: "bytes",
                note: Some("not a bbolt file".into()),
            },
            data,
        ));
    }
    Ok(out)
}

/// Link name -> layer id, for every `l/` entry of the form `../<id>/diff`; and the dangling ones.
fn read_links(home: &Path) -> Result<(BTreeMap<String, String>, Vec<DanglingLink>)> {
    let ldir = home.join(strata::layout::LINK_DIR);
    let mut links = BTreeMap::new();
    let mut dangling = Vec::new();
    if !ldir.is_dir() {
        return Ok((links, dangling));
    }
    for name in dir_names(&ldir)? {
        let path = ldir.join(&name);
        let Ok(target) = std::fs::read_link(&path) else {
            continue; // not a symlink: not ours to judge
        };
        let layer = target
            .to_str()
            .and_then(|t| t.strip_prefix("../"))
            .and_then(|t| t.strip_suffix("/diff"))
            .filter(|t| !t.contains('/') && !t.is_empty())
            .map(str::to_owned);
        match layer {
            Some(id) if home.join(&id).join("diff").is_dir() => {
                links.insert(name, id);
            }
            Some(id) if home.join(&id).exists() => {
                // The layer is there without its diff directory: the link is not dangling yet.
                links.insert(name, id);
            }
            Some(_) => dangling.push(DanglingLink {
                name,
                path,
                target,
                removed: false,
            }),
            // Some other target: only a link that resolves nowhere is dangling.
            None if std::fs::metadata(&path).is_err() => dangling.push(DanglingLink {
                name,
                path,
                target,
                removed: false,
            }),
            None => {}
        }
    }
    Ok((links, dangling))
}

/// Bytes allocated by the files under `dir` (each inode once), never following symlinks.
pub fn disk_usage(dir: &Path) -> u64 {
    let mut seen = BTreeSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.nlink() > 1 && !m.is_dir() && !seen.insert((m.dev(), m.ino())) {
            continue;
        }
        total = total.saturating_add(m.blocks().saturating_mul(512));
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        }
    }
    total
}

fn lower_links(home: &Path, id: &str) -> Vec<String> {
    std::fs::read_to_string(home.join(id).join("lower"))
        .map(|s| {
            s.trim()
                .split(':')
                .filter_map(|p| p.strip_prefix("l/"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Scans the data root. Read-only.
///
/// # Errors
/// The home, the layer database or a BuildKit file cannot be read, or the directory is not a
/// dockerd data root on overlay2.
pub fn scan(t: &Target) -> Result<Report> {
    let daemons = daemon::find(&t.docker_root);
    scan_with(t, daemons)
}

pub(crate) fn scan_with(t: &Target, daemons: Vec<Daemon>) -> Result<Report> {
    let home = std::fs::canonicalize(&t.home).map_err(Error::io("open overlay2 home", &t.home))?;
    let mut refs: BTreeMap<String, BTreeSet<Reference>> = BTreeMap::new();
    let mut doubts = Vec::new();
    let mut stale_mounts = Vec::new();
    layerdb_refs(
        t,
        !daemons.is_empty(),
        &mut refs,
        &mut doubts,
        &mut stale_mounts,
    )?;

    // Candidates: the home's directories other than l/ and dot names (strata's .strata).
    let mut kept = Vec::new();
    let mut candidates: Vec<String> = Vec::new();
    for name in dir_names(&home)? {
        if name == strata::layout::LINK_DIR || name.starts_with('.') {
            continue;
        }
        let path = home.join(&name);
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if !is_dir {
            kept.push(Kept {
                id: name,
                path,
                reason: "not a directory: overlay2 never makes one here".into(),
            });
        } else if let Err(e) = name.parse::<LayerId>() {
            kept.push(Kept {
                id: name,
                path,
                reason: format!("not a layer id ({e})"),
            });
        } else {
            candidates.push(name);
        }
    }

    let (link_to_layer, dangling_links) = read_links(&home)?;
    let mut layer_links: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (l, id) in &link_to_layer {
        layer_links.entry(id.as_str()).or_default().push(l.clone());
    }
    // The layer's own link file names its link even when l/ lost it.
    let own_link = |id: &str| -> Option<String> {
        read_trimmed(&home.join(id).join("link"))
            .ok()
            .filter(|s| !s.is_empty() && !s.contains('/'))
    };

    // BuildKit: the id anywhere in the live data of its databases.
    let buildkit = buildkit_data(t)?;
    for id in &candidates {
        if refs.contains_key(id) {
            continue;
        }
        for (f, data) in &buildkit {
            if memchr::memmem::find(data, id.as_bytes()).is_some() {
                let file = f
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                refs.entry(id.clone())
                    .or_default()
                    .insert(Reference::Buildkit { file });
            }
        }
    }

    // Mounts: a mount point inside the layer, or the layer's path or link in a mount's options.
    let table = strata_sys::mountinfo::read()
        .map_err(Error::io("read mount table", "/proc/self/mountinfo"))?;
    for id in &candidates {
        let dir = home.join(id);
        let dir_s = format!("{}/", dir.display());
        let mut names: Vec<String> = layer_links.get(id.as_str()).cloned().unwrap_or_default();
        names.extend(own_link(id));
        for m in &table {
            let inside = m.mount_point == dir || m.mount_point.starts_with(&dir);
            let text = format!("{} {}", m.super_options, m.source);
            let named = text.contains(&dir_s)
                || names
                    .iter()
                    .any(|l| text.contains(&format!("l/{l}")) || text.contains(&format!("/{l}")));
            if inside || named {
                refs.entry(id.clone())
                    .or_default()
                    .insert(Reference::Mounted {
                        mount_point: m.mount_point.clone(),
                    });
            }
        }
    }

    // Lowers of what is in use (or kept) are in use: to a fixed point.
    let candidate_set: BTreeSet<&str> = candidates.iter().map(String::as_str).collect();
    let mut work: Vec<String> = candidates
        .iter()
        .filter(|c| refs.contains_key(*c))
        .cloned()
        .collect();
    work.extend(kept.iter().map(|k| k.id.clone()));
    while let Some(child) = work.pop() {
        for l in lower_links(&home, &child) {
            let Some(parent) = link_to_layer.get(&l) else {
                continue;
            };
            if !candidate_set.contains(parent.as_str()) {
                continue;
            }
            let first = !refs.contains_key(parent);
            refs.entry(parent.clone())
                .or_default()
                .insert(Reference::LowerOf {
                    layer: child.clone(),
                });
            if first {
                work.push(parent.clone());
            }
        }
    }

    let mut in_use = Vec::new();
    let mut orphans = Vec::new();
    for id in &candidates {
        if let Some(by) = refs.get(id) {
            in_use.push(InUse {
                id: id.clone(),
                by: by.iter().cloned().collect(),
            });
        } else if !doubts.is_empty() {
            kept.push(Kept {
                id: id.clone(),
                path: home.join(id),
                reason: format!(
                    "nothing found refers to it, but the layer database is not fully readable: {}",
                    doubts.join("; ")
                ),
            });
        } else {
            let path = home.join(id);
            orphans.push(Orphan {
                id: id.clone(),
                size: disk_usage(&path),
                path,
                links: layer_links.get(id.as_str()).cloned().unwrap_or_default(),
                removed: false,
                error: None,
            });
        }
    }
    // Deepest first: a child is removed before its parent.
    orphans.sort_by_key(|o| std::cmp::Reverse(lower_links(&home, &o.id).len()));
    let reclaimable = orphans.iter().map(|o| o.size).sum();
    Ok(Report {
        docker_root: t.docker_root.clone(),
        home,
        daemons,
        orphans,
        dangling_links,
        stale_mounts,
        kept,
        in_use,
        reclaimable,
        buildkit_files: buildkit.into_iter().map(|(f, _)| f).collect(),
        doubts,
    })
}
