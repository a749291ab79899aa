//! The unix socket: created with mode 0600 whatever the umask (bound under a temporary name,
//! chmod'ed, then renamed into place, so it is never reachable with looser permissions),
//! replacing a stale socket, refusing a live one or a non-socket, and removed on shutdown only
//! if it is still ours. Never speaks gRPC.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

type Identity = (u64, u64, i64, i64);

fn identity(path: &Path) -> io::Result<Identity> {
    fs::symlink_metadata(path).map(|m| (m.dev(), m.ino(), m.ctime(), m.ctime_nsec()))
}

/// A bound socket; dropping it removes the file if it is still the one bound here.
#[derive(Debug)]
pub struct BoundSocket {
    path: PathBuf,
    identity: Option<Identity>,
}

impl BoundSocket {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        if identity(&self.path).ok() == self.identity && self.identity.is_some() {
            if let Err(e) = fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), "cannot remove the socket: {e}");
            }
        }
    }
}

/// Binds `path` with mode 0600.
///
/// # Errors
/// [`Error::SocketInUse`], [`Error::NotASocket`], [`Error::Socket`].
pub fn bind(path: &Path) -> Result<(UnixListener, BoundSocket)> {
    let err = |op: &'static str, p: &Path| {
        let path = p.to_owned();
        move |source| Error::Socket { op, path, source }
    };
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_owned(),
        None => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(err("create directory", &dir))?;
    match fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            return Err(Error::NotASocket {
                path: path.to_owned(),
            })
        }
        Ok(_) => {
            if UnixStream::connect(path).is_ok() {
                return Err(Error::SocketInUse {
                    path: path.to_owned(),
                });
            }
            tracing::debug!(path = %path.display(), "replacing a stale socket");
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err("inspect", path)(e)),
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "socket".into());
    let tmp = dir.join(format!(
        ".{name}.{}.{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let listener = UnixListener::bind(&tmp).map_err(err("bind", &tmp))?;
    let placed = fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
        .map_err(err("chmod", &tmp))
        .and_then(|()| fs::rename(&tmp, path).map_err(err("rename into place", path)));
    if let Err(e) = placed {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok((
        listener,
        BoundSocket {
            path: path.to_owned(),
            identity: identity(path).ok(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_mode_is_0600_under_a_loose_umask() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.sock");
        let old = rustix::process::umask(rustix::fs::Mode::empty());
        let r = bind(&p);
        rustix::process::umask(old);
        let (_l, guard) = r.unwrap();
        let mode = fs::symlink_metadata(&p).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(guard);
        assert!(!p.exists());
    }

    #[test]
    fn bind_live_socket_is_refused_stale_is_replaced() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.sock");
        let (live, guard) = bind(&p).unwrap();
        assert!(matches!(bind(&p), Err(Error::SocketInUse { .. })));
        drop(live);
        std::mem::forget(guard);
        let (_l, _g) = bind(&p).unwrap();
        fs::write(d.path().join("f"), b"x").unwrap();
        assert!(matches!(
            bind(&d.path().join("f")),
            Err(Error::NotASocket { .. })
        ));
    }
}
