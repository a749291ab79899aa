//! `strata::Driver` as the plugin's store: only type conversions (Init options and id maps in,
//! changes out). Every layer operation is the library's; nothing here touches the disk.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use strata::{ChangeKind, Driver, IdMapping, IdMaps, LayerId, Options, StorageOpts};

use crate::layer_store::LayerStore;
use crate::wire::{self, Change, InitRequest};

impl LayerStore for Driver {
    fn open(init: &InitRequest) -> strata::Result<Driver> {
        if init.home.is_empty() {
            return Err(strata::Error::InvalidOption {
                option: "Home".to_owned(),
                reason: "GraphDriver.Init sent no home directory".to_owned(),
            });
        }
        let options = Options::parse(init.opts.iter().flatten())?;
        let maps = IdMaps {
            uids: id_mappings("UIDMaps", init.uid_maps.as_deref())?,
            gids: id_mappings("GIDMaps", init.gid_maps.as_deref())?,
        };
        Driver::open_with_id_maps(&init.home, options, maps)
    }

    fn home(&self) -> &Path {
        Driver::home(self)
    }

    /// A layer is mounted when its `merged` directory is on another device than the layer's
    /// own directory (every overlay mount has its own device); no `merged` means not mounted.
    fn mounted(&self) -> strata::Result<Vec<LayerId>> {
        let layout = self.layout();
        let mut mounted = Vec::new();
        for id in self.list()? {
            let Ok(merged) = std::fs::metadata(layout.merged(&id)) else {
                continue;
            };
            let layer = layout.layer(&id);
            let dir = std::fs::metadata(&layer).map_err(|source| strata::Error::Io {
                op: "stat",
                path: layer,
                source,
            })?;
            if merged.dev() != dir.dev() {
                mounted.push(id);
            }
        }
        Ok(mounted)
    }

    fn status(&self) -> Vec<(String, String)> {
        Driver::status(self)
    }

    fn create(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        opts: &StorageOpts,
    ) -> strata::Result<()> {
        Driver::create(self, id, parent, opts)
    }

    fn create_read_write(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        opts: &StorageOpts,
    ) -> strata::Result<()> {
        Driver::create_read_write(self, id, parent, opts)
    }

    fn remove(&self, id: &LayerId) -> strata::Result<()> {
        Driver::remove(self, id)
    }

    fn exists(&self, id: &LayerId) -> bool {
        Driver::exists(self, id)
    }

    fn get(&self, id: &LayerId, mount_label: &str) -> strata::Result<PathBuf> {
        Driver::get(self, id, mount_label)
    }

    fn put(&self, id: &LayerId) -> strata::Result<()> {
        Driver::put(self, id)
    }

    fn metadata(&self, id: &LayerId) -> strata::Result<BTreeMap<String, String>> {
        Driver::metadata(self, id)
    }

    fn cleanup(&self) -> strata::Result<()> {
        Driver::cleanup(self)
    }

    fn apply_diff(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        tar: &mut dyn Read,
    ) -> strata::Result<u64> {
        Driver::apply_diff(self, id, parent, tar)
    }

    fn diff(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        out: &mut dyn Write,
    ) -> strata::Result<()> {
        Driver::diff(self, id, parent, out)
    }

    fn changes(&self, id: &LayerId, parent: Option<&LayerId>) -> strata::Result<Vec<Change>> {
        Ok(Driver::changes(self, id, parent)?
            .into_iter()
            .map(|c| Change {
                path: c.path,
                kind: change_kind(c.kind),
            })
            .collect())
    }

    fn diff_size(&self, id: &LayerId, parent: Option<&LayerId>) -> strata::Result<u64> {
        Driver::diff_size(self, id, parent)
    }
}

/// Docker's `archive.ChangeType` number of a change.
fn change_kind(kind: ChangeKind) -> u8 {
    match kind {
        ChangeKind::Modify => wire::CHANGE_MODIFY,
        ChangeKind::Add => wire::CHANGE_ADD,
        ChangeKind::Delete => wire::CHANGE_DELETE,
    }
}

/// Converts dockerd's id maps; a range outside 32-bit ids is an error naming the list.
fn id_mappings(list: &str, maps: Option<&[wire::IdMap]>) -> strata::Result<Vec<IdMapping>> {
    maps.unwrap_or_default()
        .iter()
        .map(|m| {
            let field = |v: i64| {
                u32::try_from(v).map_err(|_| strata::Error::InvalidOption {
                    option: format!("{list} {m:?}"),
                    reason: "id map values must be between 0 and 4294967295".to_owned(),
                })
            };
            Ok(IdMapping {
                container_id: field(m.container_id)?,
                host_id: field(m.host_id)?,
                size: field(m.size)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_mappings_converts_ranges() {
        let got = id_mappings(
            "UIDMaps",
            Some(&[wire::IdMap {
                container_id: 0,
                host_id: 100000,
                size: 65536,
            }]),
        )
        .unwrap();
        assert_eq!(
            got,
            vec![IdMapping {
                container_id: 0,
                host_id: 100000,
                size: 65536
            }]
        );
        assert!(id_mappings("GIDMaps", None).unwrap().is_empty());
    }

    #[test]
    fn id_mappings_negative_value_is_an_error_naming_the_list() {
        let err = id_mappings(
            "GIDMaps",
            Some(&[wire::IdMap {
                container_id: -1,
                host_id: 0,
                size: 1,
            }]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("GIDMaps"), "{err}");
    }

    #[test]
    fn change_kind_uses_docker_numbers() {
        assert_eq!(change_kind(ChangeKind::Modify), 0);
        assert_eq!(change_kind(ChangeKind::Add), 1);
        assert_eq!(change_kind(ChangeKind::Delete), 2);
    }

    #[test]
    fn open_unknown_option_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let init = InitRequest {
            home: dir.path().join("home").display().to_string(),
            opts: Some(vec!["overlay2.bogus=1".into()]),
            uid_maps: None,
            gid_maps: None,
        };
        let err = <Driver as LayerStore>::open(&init).unwrap_err();
        assert!(err.is_invalid_input(), "{err}");
        assert!(err.to_string().contains("overlay2.bogus"), "{err}");
        assert!(
            !dir.path().join("home").exists(),
            "a refused Init created the home"
        );
    }

    #[test]
    fn open_empty_home_is_refused() {
        let err = <Driver as LayerStore>::open(&InitRequest::default()).unwrap_err();
        assert!(err.is_invalid_input(), "{err}");
    }
}
