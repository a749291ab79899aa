//! The last `GraphDriver.Init`, saved beside the socket so that a plugin restarted while dockerd
//! runs can reopen the same home: dockerd sends `Init` once, at its own start, and keeps calling
//! the socket after a plugin restart. The record is removed on `Cleanup` (dockerd stopping).
//! This module only reads and writes that one file; it never opens a store.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::wire::InitRequest;

/// Errors of the saved-Init file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    /// Reading, writing or removing the file failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file holds something else than a saved Init.
    #[error("decode {}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// Where the last Init of one plugin socket is kept: `<socket>.strata-init`. dockerd's plugin
/// discovery looks only at sockets in the socket directory, so it ignores this file.
#[derive(Debug, Clone)]
pub(crate) struct InitRecord {
    path: PathBuf,
}

impl InitRecord {
    /// The record belonging to `socket`.
    pub(crate) fn for_socket(socket: &Path) -> InitRecord {
        let mut name = socket.as_os_str().to_owned();
        name.push(".strata-init");
        InitRecord {
            path: PathBuf::from(name),
        }
    }

    /// Saves `init` atomically (write a temporary file, then rename). The file is 0600 whatever
    /// the umask: it names the home and options of a root daemon.
    pub(crate) fn save(&self, init: &InitRequest) -> Result<(), RecordError> {
        let tmp = self.path.with_extension("strata-init.tmp");
        let data = serde_json::to_vec(init).expect("an Init request serialises to JSON");
        let io_err = |op| {
            let path = tmp.clone();
            move |source| RecordError::Io { op, path, source }
        };
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("remove")(e)),
            _ => {}
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("create"))?;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err("chmod"))?;
        file.write_all(&data).map_err(io_err("write"))?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(|source| RecordError::Io {
            op: "rename into place",
            path: self.path.clone(),
            source,
        })
    }

    /// The saved Init, if any.
    pub(crate) fn load(&self) -> Result<Option<InitRequest>, RecordError> {
        let data = match fs::read(&self.path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(RecordError::Io {
                    op: "read",
                    path: self.path.clone(),
                    source,
                })
            }
        };
        serde_json::from_slice(&data)
            .map(Some)
            .map_err(|source| RecordError::Decode {
                path: self.path.clone(),
                source,
            })
    }

    /// Forgets the saved Init (absent already is fine).
    pub(crate) fn remove(&self) -> Result<(), RecordError> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(RecordError::Io {
                op: "remove",
                path: self.path.clone(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_record_save_load_remove_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let rec = InitRecord::for_socket(&dir.path().join("p.sock"));
        assert_eq!(rec.load().unwrap(), None);
        let init = InitRequest {
            home: "/var/lib/docker/p".into(),
            opts: Some(vec!["overlay2.size=1G".into()]),
            uid_maps: None,
            gid_maps: None,
        };
        rec.save(&init).unwrap();
        assert!(dir.path().join("p.sock.strata-init").is_file());
        assert_eq!(rec.load().unwrap(), Some(init));
        rec.remove().unwrap();
        assert_eq!(rec.load().unwrap(), None);
        rec.remove().unwrap();
    }

    #[test]
    fn init_record_garbage_is_a_decode_error() {
        let dir = tempfile::tempdir().unwrap();
        let rec = InitRecord::for_socket(&dir.path().join("p.sock"));
        fs::write(dir.path().join("p.sock.strata-init"), b"not json").unwrap();
        assert!(matches!(rec.load(), Err(RecordError::Decode { .. })));
    }
}
