//! The on-disk format of a home, in one place: every path (where things live) and every file's
//! contents (how they are encoded). Pure: no syscalls here; the driver does the I/O.
//!
//! As moby overlay2: `<home>/<id>/{diff,link,lower,work,merged,committed}` and
//! `<home>/l/<link id> -> ../<id>/diff` (byte for byte in [`crate::on_disk`]). strata's own state
//! lives under `<home>/.strata/`, a name no layer id can take (ids never start with '.'), which
//! Docker's driver never reads:
//!
//! ```text
//! <home>/.strata/
//!   locks/home.lock, locks/layer-<id>.lock   flock(2) files, never deleted
//!   mounts/<id>                              mount reference count, decimal ("2")
//!   staging/<op>-<id>.<random>               layers being created, applied or removed, and
//!                                            fill markers being made (`fill-<id>.<random>`)
//!   quota/<id>, quota/quota.lock             project id of a quota-backed layer ("1001\n")
//!   incomplete/<id>                          a layer being filled in place (an apply that is
//!                                            not all-or-nothing, `strata load`), flock'd by its
//!                                            filler; one nobody holds marks it incomplete
//! <home>/.strata-mount-probe-<pid>/          scratch of the mount API probe, while opening
//! ```

use std::path::{Path, PathBuf};

use crate::id::{LayerId, LinkId};

/// Directory of short links.
pub const LINK_DIR: &str = "l";
/// strata's private state directory inside the home.
const STATE_DIR: &str = ".strata";

/// The files of one layer directory, wherever that directory is: in the home, in staging while
/// the layer is being built, or relative to the home (for mount option text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDir {
    dir: PathBuf,
}

impl LayerDir {
    /// The layer directory at `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> LayerDir {
        LayerDir { dir: dir.into() }
    }
    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }
    /// `diff/`: the layer's files (the overlay upper).
    pub fn diff(&self) -> PathBuf {
        self.dir.join("diff")
    }
    /// `work/`: overlay's work directory (layers with a parent).
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// `work/work`: the directory overlayfs itself makes inside `work/`.
    pub fn overlay_work_inner(&self) -> PathBuf {
        self.work().join("work")
    }
    /// `merged/`: the mount point while mounted.
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }
    /// `link`: the layer's short link id.
    pub fn link_file(&self) -> PathBuf {
        self.dir.join("link")
    }
    /// `lower`: the parents' short links (layers with a parent).
    pub fn lower_file(&self) -> PathBuf {
        self.dir.join("lower")
    }
    /// `committed`: Docker's marker of a layer that has children (mounts read-only).
    pub fn committed(&self) -> PathBuf {
        self.dir.join("committed")
    }
}

/// Paths of one home.
#[derive(Debug, Clone)]
pub struct Layout {
    home: PathBuf,
}

impl Layout {
    /// A layout rooted at `home` (an absolute path).
    pub fn new(home: PathBuf) -> Layout {
        Layout { home }
    }
    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }
    /// `<home>/l`.
    pub fn link_dir(&self) -> PathBuf {
        self.home.join(LINK_DIR)
    }
    /// `<home>/l/<link>`.
    pub fn link(&self, link: &LinkId) -> PathBuf {
        self.link_dir().join(link.as_str())
    }
    /// `l/<link>`, relative to the home.
    pub fn relative_link(link: &LinkId) -> PathBuf {
        Path::new(LINK_DIR).join(link.as_str())
    }
    /// What `<home>/l/<link>` of layer `id` points to: `../<id>/diff`.
    pub fn link_target(id: &LayerId) -> PathBuf {
        Path::new("..").join(Layout::relative_layer(id).diff())
    }
    /// The layer a short link's target names (`../<id>/diff`), `None` for any other target.
    pub fn layer_of_link_target(target: &Path) -> Option<LayerId> {
        let t = target.to_str()?;
        let rest = t.strip_prefix("../")?.strip_suffix("/diff")?;
        if rest.contains('/') {
            return None;
        }
        rest.parse().ok()
    }
    /// `<home>/<id>`.
    pub fn layer(&self, id: &LayerId) -> PathBuf {
        self.home.join(id.as_str())
    }
    /// The files of `<home>/<id>`.
    pub fn layer_dir(&self, id: &LayerId) -> LayerDir {
        LayerDir::at(self.layer(id))
    }
    /// The files of layer `id` relative to the home (`<id>/diff`, ...).
    pub fn relative_layer(id: &LayerId) -> LayerDir {
        LayerDir::at(id.as_str())
    }
    /// `<home>/<id>/diff`.
    pub fn diff(&self, id: &LayerId) -> PathBuf {
        self.layer_dir(id).diff()
    }
    /// `<home>/<id>/work`.
    pub fn work(&self, id: &LayerId) -> PathBuf {
        self.layer_dir(id).work()
    }
    /// `<home>/<id>/merged`.
    pub fn merged(&self, id: &LayerId) -> PathBuf {
        self.layer_dir(id).merged()
    }
    /// `<home>/<id>/link`.
    pub fn link_file(&self, id: &LayerId) -> PathBuf {
        self.layer_dir(id).link_file()
    }
    /// `<home>/<id>/lower`.
    pub fn lower_file(&self, id: &LayerId) -> PathBuf {
        self.layer_dir(id).lower_file()
    }
    /// `<home>/<id>/committed`.
    pub fn committed(&self, id: &LayerId) -> PathBuf {
        self.layer_dir(id).committed()
    }
    /// `<home>/.strata`.
    pub fn state(&self) -> PathBuf {
        self.home.join(STATE_DIR)
    }
    /// `<home>/.strata/locks`: one lock file per layer, plus `home.lock`.
    pub fn locks(&self) -> PathBuf {
        self.state().join("locks")
    }
    /// `<home>/.strata/locks/home.lock`: shared by changes, exclusive for repair.
    pub fn home_lock(&self) -> PathBuf {
        self.locks().join("home.lock")
    }
    /// `<home>/.strata/locks/layer-<id>.lock`.
    pub fn layer_lock(&self, id: &LayerId) -> PathBuf {
        self.locks().join(format!("layer-{id}.lock"))
    }
    /// `<home>/.strata/mounts`: mount reference counts, one file per mounted layer.
    pub fn mounts(&self) -> PathBuf {
        self.state().join("mounts")
    }
    /// `<home>/.strata/mounts/<id>`: the layer's mount count ([`encode_count`]).
    pub fn mount_count(&self, id: &str) -> PathBuf {
        self.mounts().join(id)
    }
    /// The temporary file a new count of `id` is written to before it is renamed in place.
    pub fn mount_count_tmp(&self, id: &str) -> PathBuf {
        self.mounts().join(format!(".{id}.tmp"))
    }
    /// `<home>/.strata/staging`: layers being created or removed.
    pub fn staging(&self) -> PathBuf {
        self.state().join("staging")
    }
    /// `<home>/.strata/quota`: one record per quota-backed layer ([`encode_quota_record`]).
    pub fn quota_records(&self) -> PathBuf {
        self.state().join("quota")
    }
    /// `<home>/.strata/quota/quota.lock`: held while project ids are allocated or released.
    pub fn quota_lock(&self) -> PathBuf {
        self.quota_records().join("quota.lock")
    }
    /// `<home>/.strata/quota/<id>`.
    pub fn quota_record(&self, id: &LayerId) -> PathBuf {
        self.quota_records().join(id.as_str())
    }
    /// The temporary file a record of `id` is written to before it is renamed in place.
    pub fn quota_record_tmp(&self, id: &LayerId) -> PathBuf {
        self.quota_records().join(format!(".{id}.tmp"))
    }
    /// Whether a name in [`Layout::quota_records`] is a record (not the lock or a temporary).
    pub fn is_quota_record_name(name: &str) -> bool {
        !name.starts_with('.') && !name.ends_with(".lock")
    }
    /// `<home>/.strata-mount-probe-<pid>`: scratch directories for the mount API probe, made
    /// while the driver opens (before `.strata/` may exist) and removed at once.
    pub fn mount_probe_scratch(&self) -> PathBuf {
        self.home
            .join(format!(".strata-mount-probe-{}", std::process::id()))
    }
    /// `<home>/.strata/incomplete`: one marker per layer being filled in place
    /// ([`crate::fill`]).
    pub fn incomplete_dir(&self) -> PathBuf {
        self.state().join("incomplete")
    }
    /// `<home>/.strata/incomplete/<id>`: the marker of layer `id` while it is being filled (held
    /// with an exclusive `flock`) or after a fill that did not finish (held by nobody).
    pub fn incomplete(&self, id: &LayerId) -> PathBuf {
        self.incomplete_dir().join(id.as_str())
    }
    /// The staging file a new marker of `id` is created and locked in before it is renamed to
    /// [`Layout::incomplete`], so that the marker never exists unlocked while its filler lives.
    /// `suffix` makes it unique.
    pub fn incomplete_tmp(&self, id: &LayerId, suffix: u64) -> PathBuf {
        self.staging().join(format!("fill-{id}.{suffix:016x}"))
    }
}

/// The contents of a mount count file: the count in decimal.
pub fn encode_count(n: u64) -> String {
    n.to_string()
}

/// Reads a mount count file; anything unreadable counts as 0.
pub fn decode_count(s: &str) -> u64 {
    s.trim().parse().unwrap_or(0)
}

/// The contents of a quota record: the project id in decimal and a newline.
pub fn encode_quota_record(projid: u32) -> String {
    format!("{projid}\n")
}

/// Reads a quota record; `None` when it does not hold a project id.
pub fn decode_quota_record(s: &str) -> Option<u32> {
    s.trim().parse().ok()
}

/// The `lower` file: the link ids of all parents, nearest first (`l/A:l/B`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LowerChain(pub Vec<LinkId>);

impl LowerChain {
    /// Encodes as Docker writes it: `l/<id>` joined by `:`, no trailing newline.
    pub fn encode(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|l| Layout::relative_link(l).display().to_string())
            .collect();
        parts.join(":")
    }

    /// Decodes a `lower` file.
    ///
    /// # Errors
    /// An element that is not `l/<link id>`.
    pub fn decode(s: &str) -> Result<LowerChain, String> {
        LowerChain::decode_each(s)
            .into_iter()
            .collect::<Result<_, _>>()
            .map(LowerChain)
    }

    /// Decodes a `lower` file element by element: each is a link id, or the element (as written)
    /// with why it is not one.
    pub fn decode_each(s: &str) -> Vec<Result<LinkId, String>> {
        let s = s.trim_end_matches('\n');
        if s.is_empty() {
            return Vec::new();
        }
        s.split(':')
            .map(|part| {
                part.strip_prefix("l/")
                    .ok_or_else(|| format!("lower element {part:?} does not start with 'l/'"))
                    .and_then(LinkId::parse)
            })
            .collect()
    }

    /// Number of lowers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no lowers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_chain_round_trips_docker_format() {
        let s = "l/ABCDEFGHIJKLMNOPQRSTUVWXYZ:l/0123456789ABCDEFGHIJKLMNOP";
        let c = LowerChain::decode(s).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.0[0].as_str(), "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
        assert_eq!(c.encode(), s);
    }

    #[test]
    fn link_target_round_trips() {
        let id: LayerId = "abc".parse().unwrap();
        let t = Layout::link_target(&id);
        assert_eq!(t, Path::new("../abc/diff"));
        assert_eq!(Layout::layer_of_link_target(&t), Some(id));
        assert_eq!(Layout::layer_of_link_target(Path::new("../a/b/diff")), None);
        assert_eq!(Layout::layer_of_link_target(Path::new("/abc/diff")), None);
    }

    #[test]
    fn lower_chain_rejects_escapes() {
        assert!(LowerChain::decode("l/../../etc").is_err());
        assert!(LowerChain::decode("/abs/path").is_err());
        assert!(LowerChain::decode("").unwrap().is_empty());
    }
}
