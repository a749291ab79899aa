//! Status, GetMetadata, Exists, list and Cleanup: read-only views of the home, and unmounting
//! everything at shutdown.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::id::LayerId;

use super::Driver;

impl Driver {
    /// Docker's Status pairs, plus what strata probed.
    pub fn status(&self) -> Vec<(String, String)> {
        let p = &self.probes;
        let mut v = vec![
            ("Backing Filesystem".to_owned(), p.backing_fs.to_owned()),
            ("Supports d_type".to_owned(), p.d_type.to_string()),
            (
                "Native Overlay Diff".to_owned(),
                self.native_diff_ok().to_string(),
            ),
            ("userxattr".to_owned(), p.userxattr.to_string()),
            ("Kernel".to_owned(), p.kernel.clone()),
            (
                "Mount API".to_owned(),
                if p.new_mount_api {
                    "fsopen/fsconfig lowerdir+".to_owned()
                } else {
                    "mount(2)".to_owned()
                },
            ),
            ("Index Off".to_owned(), p.index_off.to_string()),
            (
                "Multiple Lowers".to_owned(),
                (p.kernel_version >= (4, 0, 0)).to_string(),
            ),
        ];
        match &self.quota {
            Some(q) => {
                v.push(("Project Quota".to_owned(), "true".to_owned()));
                v.push(("Quota Device".to_owned(), q.device()));
            }
            None => {
                v.push(("Project Quota".to_owned(), "false".to_owned()));
                if let Some(why) = &self.quota_unsupported {
                    v.push(("Project Quota Detail".to_owned(), why.clone()));
                }
            }
        }
        v
    }

    /// Whether the layer exists.
    pub fn exists(&self, id: &LayerId) -> bool {
        std::fs::symlink_metadata(self.layout.layer(id))
            .map(|m| m.is_dir())
            .unwrap_or(false)
    }

    /// The direct parent of a layer (`None` for a base layer), read from its `lower` file and
    /// the short link it names.
    ///
    /// # Errors
    /// The layer does not exist, or its nearest lower does not resolve to a layer.
    pub fn parent(&self, id: &LayerId) -> Result<Option<LayerId>> {
        self.ensure_exists(id)?;
        let chain = self.lowers(id)?;
        let Some(first) = chain.0.first() else {
            return Ok(None);
        };
        self.layer_of_link(first)
            .filter(|p| self.exists(p))
            .map(Some)
            .ok_or_else(|| {
                self.missing_lower(id, &chain)
                    .unwrap_or_else(|| Error::Corrupt {
                        id: id.to_string(),
                        what: format!("its nearest lower l/{first} does not lead to a layer"),
                    })
            })
    }

    /// All layers, sorted. Names that are not layer ids (`l`, `.strata`) are not listed.
    ///
    /// # Errors
    /// The home cannot be read.
    pub fn list(&self) -> Result<Vec<LayerId>> {
        let home = self.layout.home();
        let mut v = Vec::new();
        for e in std::fs::read_dir(home).map_err(Error::io("read directory", home))? {
            let e = e.map_err(Error::io("read directory", home))?;
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(id) = name.parse::<LayerId>() else {
                continue;
            };
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                v.push(id);
            }
        }
        v.sort();
        Ok(v)
    }

    /// Docker's GetMetadata: `WorkDir`, `MergedDir`, `UpperDir`, `LowerDir` (when it has
    /// parents), plus quota limits and usage for a quota-backed layer.
    ///
    /// # Errors
    /// The layer does not exist or its chain cannot be resolved.
    pub fn metadata(&self, id: &LayerId) -> Result<BTreeMap<String, String>> {
        self.ensure_exists(id)?;
        let mut m = BTreeMap::new();
        m.insert(
            "WorkDir".to_owned(),
            self.layout.work(id).display().to_string(),
        );
        m.insert(
            "MergedDir".to_owned(),
            self.layout.merged(id).display().to_string(),
        );
        m.insert(
            "UpperDir".to_owned(),
            self.layout.diff(id).display().to_string(),
        );
        let lowers = self.lower_diff_dirs(id)?;
        if !lowers.is_empty() {
            let joined: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
            m.insert("LowerDir".to_owned(), joined.join(":"));
        }
        if let Some(q) = &self.quota {
            if let Some(u) = q.usage(id, &self.layout.layer(id))? {
                m.insert("QuotaProjectId".to_owned(), u.project_id.to_string());
                m.insert("QuotaSizeLimit".to_owned(), u.size_limit.to_string());
                m.insert("QuotaSizeUsed".to_owned(), u.size_used.to_string());
                m.insert("QuotaInodeLimit".to_owned(), u.inode_limit.to_string());
                m.insert("QuotaInodesUsed".to_owned(), u.inodes_used.to_string());
            }
        }
        Ok(m)
    }

    /// Unmounts every mount beneath the home (deepest first) and forgets all mount counts, as
    /// moby overlay2 does at daemon shutdown.
    ///
    /// # Errors
    /// The mount table cannot be read or a mount cannot be detached.
    pub fn cleanup(&self) -> Result<()> {
        self.mounts.unmount_all()
    }
}
