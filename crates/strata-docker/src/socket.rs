//! The plugin's unix socket: where it lives, replacing a stale one, refusing a live one, and
//! removing it again on shutdown (only if it is still ours). The socket is 0600 whatever the
//! umask: whoever can connect drives a root daemon's storage. This module never speaks HTTP.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use crate::error::Error;

/// Where dockerd looks for a legacy plugin named `name` first.
pub const PLUGIN_SOCKET_DIR: &str = "/run/docker/plugins";

/// Checks that `name` can name `<dir>/<name>.sock`.
///
/// # Errors
/// [`Error::InvalidName`].
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    let invalid = |reason| Error::InvalidName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if name.starts_with('.') {
        return Err(invalid("a name may not start with '.'"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(invalid(
            "a name may hold only ASCII letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

/// The default socket of plugin `name`: `/run/docker/plugins/<name>.sock`.
pub(crate) fn default_path(name: &str) -> PathBuf {
    Path::new(PLUGIN_SOCKET_DIR).join(format!("{name}.sock"))
}

/// What tells our socket file from a later one at the same path (an inode number alone is
/// reused at once).
type Identity = (u64, u64, i64, i64);

fn identity(path: &Path) -> io::Result<Identity> {
    fs::symlink_metadata(path).map(|m| (m.dev(), m.ino(), m.ctime(), m.ctime_nsec()))
}

/// A bound socket; dropping it removes the socket file if it is still the one bound here.
#[derive(Debug)]
pub(crate) struct BoundSocket {
    path: PathBuf,
    identity: Option<Identity>,
}

impl BoundSocket {
    /// The socket path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        match identity(&self.path) {
            Ok(id) if Some(id) == self.identity => {
                if let Err(e) = fs::remove_file(&self.path) {
                    warn!(path = %self.path.display(), error = %e, "cannot remove the socket");
                }
            }
            Ok(_) => {
                debug!(path = %self.path.display(), "socket replaced by another process; left alone")
            }
            Err(_) => {}
        }
    }
}

/// Binds `path`, replacing a stale socket file (nobody answers a connect) and refusing a live
/// one. Creates the directory (0755) if needed. The socket is bound inside a private (0700)
/// directory beside `path`, made 0600, and only then renamed into place, so no other user can
/// connect at any moment, whatever the umask.
///
/// # Errors
/// [`Error::SocketInUse`], [`Error::NotASocket`], [`Error::Socket`].
pub(crate) fn bind(path: &Path) -> Result<(UnixListener, BoundSocket), Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|source| Error::Socket {
                op: "create directory",
                path: dir.to_owned(),
                source,
            })?;
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(Error::NotASocket {
                path: path.to_owned(),
            })
        }
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(Error::SocketInUse {
                    path: path.to_owned(),
                })
            }
            Err(e) => {
                debug!(path = %path.display(), error = %e, "replacing a stale socket");
                remove_if_present(path)?;
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::Socket {
                op: "inspect",
                path: path.to_owned(),
                source,
            })
        }
    }
    let listener = bind_private(path)?;
    Ok((
        listener,
        BoundSocket {
            path: path.to_owned(),
            identity: identity(path).ok(),
        },
    ))
}

/// Binds in a fresh 0700 directory beside `path`, sets 0600, renames the socket to `path`.
fn bind_private(path: &Path) -> Result<UnixListener, Error> {
    let err = |op, path: &Path| {
        let path = path.to_owned();
        move |source| Error::Socket { op, path, source }
    };
    let mut private = path.as_os_str().to_owned();
    private.push(format!(".bind-{}", std::process::id()));
    let private = PathBuf::from(private);
    // A leftover of a plugin that crashed right here (same pid after a reboot).
    let _ = fs::remove_dir_all(&private);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(err("create directory", &private))?;
    let result = (|| {
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700))
            .map_err(err("chmod", &private))?;
        let inner = private.join("s");
        let listener = UnixListener::bind(&inner).map_err(err("bind", &inner))?;
        fs::set_permissions(&inner, fs::Permissions::from_mode(0o600))
            .map_err(err("chmod", &inner))?;
        fs::rename(&inner, path).map_err(err("bind", path))?;
        Ok(listener)
    })();
    if let Err(e) = fs::remove_dir(&private) {
        warn!(path = %private.display(), error = %e, "cannot remove the temporary socket directory");
    }
    result
}

fn remove_if_present(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Socket {
            op: "remove stale socket",
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_name_unsafe_names_are_refused() {
        assert!(check_name("strata-test_1").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", "x\0"] {
            assert!(
                matches!(check_name(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn default_path_is_in_the_docker_plugin_dir() {
        assert_eq!(
            default_path("strata"),
            PathBuf::from("/run/docker/plugins/strata.sock")
        );
    }

    #[test]
    fn bind_stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/p.sock");
        let (first, guard) = bind(&path).unwrap();
        drop(first);
        // Leak the file as a crashed plugin would.
        std::mem::forget(guard);
        assert!(path.exists());
        let (_listener, guard) = bind(&path).unwrap();
        assert!(path.exists());
        drop(guard);
        assert!(!path.exists());
    }

    #[test]
    fn bind_socket_is_0600_and_leaves_no_temporary_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sock");
        let (_listener, _guard) = bind(&path).unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("p.sock")]);
        // The renamed socket still answers.
        UnixStream::connect(&path).unwrap();
    }

    #[test]
    fn bind_live_socket_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sock");
        let (_live, _guard) = bind(&path).unwrap();
        let err = bind(&path).unwrap_err();
        assert!(matches!(err, Error::SocketInUse { .. }), "{err}");
        assert!(err.to_string().contains("in use"));
    }

    #[test]
    fn bind_regular_file_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sock");
        fs::write(&path, b"data").unwrap();
        assert!(matches!(bind(&path), Err(Error::NotASocket { .. })));
        assert_eq!(fs::read(&path).unwrap(), b"data");
    }

    #[test]
    fn bound_socket_drop_leaves_a_replaced_socket_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sock");
        let (l1, g1) = bind(&path).unwrap();
        drop(l1);
        fs::remove_file(&path).unwrap();
        let (_l2, g2) = bind(&path).unwrap();
        drop(g1);
        assert!(path.exists(), "the first guard removed the second socket");
        drop(g2);
        assert!(!path.exists());
    }
}
