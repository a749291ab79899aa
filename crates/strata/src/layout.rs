//! Where things live in a home, and the `lower` file format. Pure: no syscalls here.
//!
//! As moby overlay2: `<home>/<id>/{diff,link,lower,work,merged,committed}` and
//! `<home>/l/<link id> -> ../<id>/diff`. strata's own state lives under `<home>/.strata/`, a
//! name no layer id can take (ids never start with '.'), which Docker's driver never reads.

use std::path::{Path, PathBuf};

use crate::id::{LayerId, LinkId};

/// Directory of short links.
pub const LINK_DIR: &str = "l";
/// strata's private state directory inside the home.
pub const STATE_DIR: &str = ".strata";

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
    /// `<home>/<id>`.
    pub fn layer(&self, id: &LayerId) -> PathBuf {
        self.home.join(id.as_str())
    }
    /// `<home>/<id>/diff`.
    pub fn diff(&self, id: &LayerId) -> PathBuf {
        self.layer(id).join("diff")
    }
    /// `<home>/<id>/work`.
    pub fn work(&self, id: &LayerId) -> PathBuf {
        self.layer(id).join("work")
    }
    /// `<home>/<id>/merged`.
    pub fn merged(&self, id: &LayerId) -> PathBuf {
        self.layer(id).join("merged")
    }
    /// `<home>/<id>/link`.
    pub fn link_file(&self, id: &LayerId) -> PathBuf {
        self.layer(id).join("link")
    }
    /// `<home>/<id>/lower`.
    pub fn lower_file(&self, id: &LayerId) -> PathBuf {
        self.layer(id).join("lower")
    }
    /// `<home>/<id>/committed`.
    pub fn committed(&self, id: &LayerId) -> PathBuf {
        self.layer(id).join("committed")
    }
    /// `<home>/.strata`.
    pub fn state(&self) -> PathBuf {
        self.home.join(STATE_DIR)
    }
    /// `<home>/.strata/locks`: one lock file per layer, plus `home.lock`.
    pub fn locks(&self) -> PathBuf {
        self.state().join("locks")
    }
    /// `<home>/.strata/mounts`: mount reference counts, one file per mounted layer.
    pub fn mounts(&self) -> PathBuf {
        self.state().join("mounts")
    }
    /// `<home>/.strata/staging`: layers being created or removed.
    pub fn staging(&self) -> PathBuf {
        self.state().join("staging")
    }
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
            .map(|l| format!("{LINK_DIR}/{}", l.as_str()))
            .collect();
        parts.join(":")
    }

    /// Decodes a `lower` file.
    ///
    /// # Errors
    /// An element that is not `l/<link id>`.
    pub fn decode(s: &str) -> Result<LowerChain, String> {
        let s = s.trim_end_matches('\n');
        if s.is_empty() {
            return Ok(LowerChain::default());
        }
        let mut out = Vec::new();
        for part in s.split(':') {
            let link = part
                .strip_prefix("l/")
                .ok_or_else(|| format!("lower element {part:?} does not start with 'l/'"))?;
            out.push(LinkId::parse(link)?);
        }
        Ok(LowerChain(out))
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
    fn lower_chain_rejects_escapes() {
        assert!(LowerChain::decode("l/../../etc").is_err());
        assert!(LowerChain::decode("/abs/path").is_err());
        assert!(LowerChain::decode("").unwrap().is_empty());
    }
}
