//! Quota records: which project id each quota-backed layer of the home holds, one file per
//! layer ([`Layout::quota_record`], encoded by [`layout::encode_quota_record`]), changed only
//! under the records lock ([`Layout::quota_lock`]) so two processes never hand out one id.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;

use crate::error::Error;
use crate::id::LayerId;
use crate::layout::{self, Layout};
use crate::lock::{lock, LockGuard, LockKind};

/// The records of one home.
#[derive(Debug)]
pub(super) struct Records {
    layout: Layout,
}

impl Records {
    /// The records of the home laid out by `layout`, creating their directory.
    pub(super) fn open(layout: Layout) -> io::Result<Records> {
        std::fs::create_dir_all(layout.quota_records())?;
        Ok(Records { layout })
    }

    /// Takes the records lock (held while ids are allocated or released).
    pub(super) fn lock(&self) -> Result<LockGuard, Error> {
        lock(&self.layout.quota_lock(), LockKind::Exclusive)
    }

    /// The project id recorded for a layer, if it has one.
    pub(super) fn read(&self, id: &LayerId) -> Result<Option<u32>, Error> {
        let path = self.layout.quota_record(id);
        match std::fs::read_to_string(&path) {
            Ok(s) => layout::decode_quota_record(&s)
                .map(Some)
                .ok_or_else(|| Error::Corrupt {
                    id: id.to_string(),
                    what: format!("quota record {} holds {:?}", path.display(), s.trim()),
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read quota record", path)(e)),
        }
    }

    /// Records `projid` for a layer (written to a temporary file, synced, renamed).
    pub(super) fn write(&self, id: &LayerId, projid: u32) -> Result<(), Error> {
        let path = self.layout.quota_record(id);
        let tmp = self.layout.quota_record_tmp(id);
        std::fs::write(&tmp, layout::encode_quota_record(projid))
            .and_then(|()| File::open(&tmp)?.sync_all())
            .map_err(Error::io("write quota record", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(Error::io("commit quota record", &path))
    }

    /// Removes a layer's record.
    pub(super) fn remove(&self, id: &LayerId) -> Result<(), Error> {
        let rec = self.layout.quota_record(id);
        std::fs::remove_file(&rec).map_err(Error::io("remove quota record", rec))
    }

    /// Removes a layer's record after a failed `set`; a failure is logged (the caller reports
    /// the error that made it give the id back).
    pub(super) fn give_back(&self, id: &LayerId) {
        if let Err(e) = std::fs::remove_file(self.layout.quota_record(id)) {
            tracing::warn!(layer = %id, error = %e, "cannot remove quota record after failure");
        }
    }

    /// Every record's name and project id, sorted by name.
    pub(super) fn list(&self) -> Result<Vec<(String, u32)>, Error> {
        let mut out = Vec::new();
        let dir = self.layout.quota_records();
        let entries = std::fs::read_dir(&dir).map_err(Error::io("read quota records", &dir))?;
        for entry in entries {
            let entry = entry.map_err(Error::io("read quota records", &dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !Layout::is_quota_record_name(name) {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if let Some(p) = layout::decode_quota_record(&text) {
                out.push((name.to_owned(), p));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Ids in the records: every layer's, including layers of crashed creations.
    pub(super) fn taken(&self) -> Result<BTreeSet<u32>, Error> {
        Ok(self.list()?.into_iter().map(|(_, p)| p).collect())
    }
}
