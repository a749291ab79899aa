//! The [`Driver`]: one home, opened once, then one file per graphdriver operation, named as moby
//! names them. Every operation on a layer holds that layer's lock (threads and processes); every
//! operation that changes layers also holds the home lock shared, which `check --repair` takes
//! exclusively.

mod apply_diff;
pub mod check;
mod create;
mod diff;
mod get_put;
mod remove;
mod snapshot;
mod status;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use strata_archive::{IdMaps, WhiteoutFormat};

use crate::error::{Error, Result};
use crate::id::{LayerId, LinkId};
use crate::layout::{Layout, LowerChain};
use crate::lock::{self, LockGuard, LockKind};
use crate::mount::refs::Refs;
use crate::options::Options;
use crate::probe::{self, Probes};
use crate::quota::QuotaControl;

/// A layer store in Docker overlay2's format at one home directory.
#[derive(Debug)]
pub struct Driver {
    layout: Layout,
    options: Options,
    probes: Probes,
    id_maps: IdMaps,
    quota: Option<QuotaControl>,
    quota_unsupported: Option<String>,
    refs: Refs,
    native_diff: OnceLock<std::result::Result<(), String>>,
}

impl Driver {
    /// Opens (creating when needed) the home at `home` after probing the host.
    ///
    /// # Errors
    /// [`Error::NotSupported`] when the host cannot run overlay2 here; an option the filesystem
    /// cannot honour; a filesystem error creating the home.
    pub fn open(home: impl AsRef<Path>, options: Options) -> Result<Driver> {
        Driver::open_with_id_maps(home, options, IdMaps::default())
    }

    /// As [`Driver::open`], with uid/gid maps applied to layer content (container → host).
    ///
    /// # Errors
    /// As [`Driver::open`].
    pub fn open_with_id_maps(
        home: impl AsRef<Path>,
        options: Options,
        id_maps: IdMaps,
    ) -> Result<Driver> {
        let home =
            std::path::absolute(home.as_ref()).map_err(Error::io("resolve home", home.as_ref()))?;
        let mut probes = Probes::run(&home, &options)?;
        if options.force_legacy_mount {
            probes.new_mount_api = false;
        }
        let layout = Layout::new(home.clone());
        let initialised = layout.link_dir().is_dir();
        if !probes.d_type {
            if !initialised {
                return Err(Error::NotSupported {
                    found: format!(
                        "the {} filesystem holding {} does not report file types (d_type)",
                        probes.backing_fs,
                        home.display()
                    ),
                    hint: "reformat it with d_type support (xfs: mkfs.xfs -n ftype=1)".into(),
                });
            }
            // As moby overlay2: an existing home keeps working without d_type.
            tracing::warn!(home = %home.display(), "filesystem lacks d_type support");
        }
        for dir in [
            layout.home().to_owned(),
            layout.link_dir(),
            layout.state(),
            layout.locks(),
            layout.mounts(),
            layout.staging(),
        ] {
            create_dir_mode(&dir, 0o700)?;
        }
        let (quota, quota_unsupported) = match QuotaControl::probe(&home) {
            Ok(q) => (Some(q), None),
            Err(why) => (None, Some(why.0)),
        };
        if let (Some(why), true) = (
            &quota_unsupported,
            options.size.is_some() || options.inodes.is_some(),
        ) {
            return Err(Error::InvalidOption {
                option: "overlay2.size".into(),
                reason: format!(
                    "project quotas are not available on {}: {why}",
                    home.display()
                ),
            });
        }
        tracing::debug!(home = %home.display(), ?probes, "opened driver");
        Ok(Driver {
            refs: Refs::new(layout.mounts()),
            layout,
            options,
            probes,
            id_maps,
            quota,
            quota_unsupported,
            native_diff: OnceLock::new(),
        })
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        self.layout.home()
    }

    /// What the host offers.
    pub fn probes(&self) -> &Probes {
        &self.probes
    }

    /// Paths of the home.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn home_lock(&self, kind: LockKind) -> Result<LockGuard> {
        lock::lock(&self.layout.locks(), "home", kind)
    }

    fn layer_lock(&self, id: &LayerId, kind: LockKind) -> Result<LockGuard> {
        lock::lock(&self.layout.locks(), &format!("layer-{id}"), kind)
    }

    fn ensure_exists(&self, id: &LayerId) -> Result<()> {
        match std::fs::symlink_metadata(self.layout.layer(id)) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Error::Corrupt {
                id: id.to_string(),
                what: "the layer path is not a directory".into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::LayerNotFound { id: id.to_string() })
            }
            Err(e) => Err(Error::io("stat layer", self.layout.layer(id))(e)),
        }
    }

    /// The layer's `lower` chain (empty for a base layer).
    fn lowers(&self, id: &LayerId) -> Result<LowerChain> {
        let p = self.layout.lower_file(id);
        match std::fs::read_to_string(&p) {
            Ok(s) => LowerChain::decode(&s).map_err(|what| Error::Corrupt {
                id: id.to_string(),
                what: format!("lower file: {what}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LowerChain::default()),
            Err(e) => Err(Error::io("read lower file", p)(e)),
        }
    }

    fn has_lower_file(&self, id: &LayerId) -> Result<bool> {
        let p = self.layout.lower_file(id);
        match std::fs::symlink_metadata(&p) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("stat lower file", p)(e)),
        }
    }

    /// The layer's own link id.
    fn link_of(&self, id: &LayerId) -> Result<LinkId> {
        let p = self.layout.link_file(id);
        let s = std::fs::read_to_string(&p).map_err(Error::io("read link file", &p))?;
        LinkId::parse(&s).map_err(|what| Error::Corrupt {
            id: id.to_string(),
            what: format!("link file: {what}"),
        })
    }

    /// The diff directories of the lowers, nearest first, resolved through `l/`.
    fn lower_diff_dirs(&self, id: &LayerId) -> Result<Vec<PathBuf>> {
        let chain = self.lowers(id)?;
        chain
            .0
            .iter()
            .map(|l| {
                let link = self.layout.link(l);
                let target = std::fs::read_link(&link).map_err(Error::io("read link", &link))?;
                Ok(normalise(&self.layout.link_dir().join(target)))
            })
            .collect()
    }

    /// The layer id a link resolves to (`l/X -> ../<id>/diff`).
    fn layer_of_link(&self, link: &LinkId) -> Option<String> {
        let target = std::fs::read_link(self.layout.link(link)).ok()?;
        let t = target.to_str()?;
        let rest = t.strip_prefix("../")?.strip_suffix("/diff")?;
        (!rest.contains('/')).then(|| rest.to_owned())
    }

    /// As moby overlay2 (isParent): whether `parent` is the direct parent of `id`.
    fn is_parent(&self, id: &LayerId, parent: Option<&LayerId>) -> Result<bool> {
        let chain = self.lowers(id)?;
        Ok(match (chain.0.first(), parent) {
            (None, None) => true,
            (None, Some(_)) | (Some(_), None) => false,
            (Some(first), Some(p)) => self.layer_of_link(first).as_deref() == Some(p.as_str()),
        })
    }

    /// Whether the native (upper-only) diff is valid on this kernel; probed once, lazily, since
    /// the probe mounts an overlay.
    fn native_diff_ok(&self) -> bool {
        self.native_diff
            .get_or_init(|| {
                // Held so that `check --repair` does not take the scratch for a leftover.
                let _home = self
                    .home_lock(LockKind::Shared)
                    .map_err(|e| e.to_string())?;
                let scratch = self
                    .layout
                    .staging()
                    .join(format!("probe-{}", std::process::id()));
                let r = probe::native_diff(&scratch, &self.probes);
                if let Err(why) = &r {
                    tracing::warn!("not using native diff: {why}");
                }
                r
            })
            .is_ok()
    }

    /// Host uid and gid of the container's root (0:0 without id maps). As moby overlay2, the
    /// layer directories belong to it, so that a remapped root can use them.
    fn root_owner(&self) -> (u32, u32) {
        let map = |ranges: &[strata_archive::IdMapping]| {
            ranges
                .iter()
                .find(|r| r.container_id == 0 && r.size > 0)
                .map_or(0, |r| r.host_id)
        };
        (map(&self.id_maps.uids), map(&self.id_maps.gids))
    }

    /// Gives `path` to the container's root when ids are remapped.
    fn chown_to_root(&self, path: &Path) -> Result<()> {
        let (uid, gid) = self.root_owner();
        if (uid, gid) == (0, 0) {
            return Ok(());
        }
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(Error::io("chown", path))
    }

    fn whiteout_format(&self) -> WhiteoutFormat {
        if self.probes.userxattr {
            WhiteoutFormat::OverlayUserXattr
        } else {
            WhiteoutFormat::Overlay
        }
    }
}

/// Lexically removes `.` and `..` (for link targets like `l/../<id>/diff`).
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

fn create_dir_mode(dir: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::io("create directory", dir)(e)),
    }
}
