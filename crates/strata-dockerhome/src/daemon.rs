//! Is a dockerd using this data root? Two independent signs, either one is enough:
//!
//! - **a lock**: dockerd keeps bbolt databases in its data root open for its whole life
//!   (`volumes/metadata.db`, `network/files/local-kv.db`, BuildKit's `buildkit/*.db`), and bbolt
//!   holds an exclusive `flock` on each open file. `/proc/locks` names the holder's pid. This
//!   sees a daemon in another mount namespace too (a dockerd in a container).
//! - **a process**: a process named `dockerd` whose data root (`--data-root`, the older `-g` /
//!   `--graph`, else `data-root` in its `--config-file` or `/etc/docker/daemon.json`, else
//!   `/var/lib/docker`), looked up through its own root directory (`/proc/PID/root`), is this
//!   directory (same device and inode).
//!
//! [`DaemonGuard`] takes those locks itself while `--prune` runs, so a dockerd started meanwhile
//! cannot open its databases (it waits, then fails to start) instead of racing the removal.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A dockerd found using the data root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Daemon {
    /// Its process id (as this process sees it).
    pub pid: u32,
    /// How it was recognised, for people.
    pub how: String,
}

/// The database files dockerd keeps open (and flocked) while it runs, that exist under `root`.
pub fn lock_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![
        root.join("volumes/metadata.db"),
        root.join("network/files/local-kv.db"),
    ];
    if let Ok(rd) = std::fs::read_dir(root.join("buildkit")) {
        let mut bk: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "db"))
            .collect();
        bk.sort();
        files.extend(bk);
    }
    files.retain(|p| p.is_file());
    files
}

/// One line of `/proc/locks`: the holder and the locked file's device and inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    /// Holder pid (0 or -1 when the kernel does not say: OFD locks, another pid namespace).
    pub pid: i64,
    /// Device major.
    pub major: u32,
    /// Device minor.
    pub minor: u32,
    /// Inode number.
    pub inode: u64,
}

/// Parses `/proc/locks` (`1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`; blocked waiters,
/// marked `->`, are skipped). Malformed lines are skipped.
pub fn parse_proc_locks(text: &str) -> Vec<LockEntry> {
    text.lines()
        .filter(|l| !l.contains("->"))
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let pid: i64 = f.get(4)?.parse().ok()?;
            let mut dev = f.get(5)?.split(':');
            let major = u32::from_str_radix(dev.next()?, 16).ok()?;
            let minor = u32::from_str_radix(dev.next()?, 16).ok()?;
            let inode = dev.next()?.parse().ok()?;
            Some(LockEntry {
                pid,
                major,
                minor,
                inode,
            })
        })
        .collect()
}

/// Processes holding a lock on one of `files`.
fn lock_holders(files: &[PathBuf]) -> Vec<Daemon> {
    let Ok(text) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let locks = parse_proc_locks(&text);
    let mut out = Vec::new();
    for f in files {
        let Ok(m) = std::fs::metadata(f) else {
            continue;
        };
        let (maj, min) = (rustix::fs::major(m.dev()), rustix::fs::minor(m.dev()));
        for l in &locks {
            if l.major == maj && l.minor == min && l.inode == m.ino() {
                out.push(Daemon {
                    pid: u32::try_from(l.pid).unwrap_or(0),
                    how: format!("it holds a lock on {}", f.display()),
                });
            }
        }
    }
    out
}

/// The value of `--flag X` / `--flag=X` (any of `names`) in an argument list; the last wins.
fn flag_value(args: &[String], names: &[&str]) -> Option<String> {
    let mut found = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        for n in names {
            if a == n {
                if let Some(v) = args.get(i + 1) {
                    found = Some(v.clone());
                }
            } else if let Some(v) = a.strip_prefix(n).and_then(|r| r.strip_prefix('=')) {
                found = Some(v.to_owned());
            }
        }
        i += 1;
    }
    found
}

/// The data root a dockerd with command line `args` uses, as a path in its own mount namespace;
/// `read_config` reads a file of that namespace. `Err` when its config file exists but cannot
/// be understood (the caller then assumes the worst).
pub fn data_root_of(
    args: &[String],
    read_config: impl Fn(&Path) -> std::io::Result<String>,
) -> Result<PathBuf, String> {
    if let Some(r) = flag_value(args, &["--data-root", "-g", "--graph"]) {
        return Ok(PathBuf::from(r));
    }
    let (config, explicit) = match flag_value(args, &["--config-file"]) {
        Some(c) => (PathBuf::from(c), true),
        None => (PathBuf::from("/etc/docker/daemon.json"), false),
    };
    match read_config(&config) {
        Ok(text) => {
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("its config file {} is not JSON: {e}", config.display()))?;
            let root = v
                .get("data-root")
                .or_else(|| v.get("graph"))
                .and_then(|r| r.as_str());
            Ok(PathBuf::from(root.unwrap_or("/var/lib/docker")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            Ok(PathBuf::from("/var/lib/docker"))
        }
        Err(e) => Err(format!(
            "its config file {} cannot be read: {e}",
            config.display()
        )),
    }
}

/// `dockerd` processes whose data root is `root`.
fn dockerd_processes(root: &Path) -> Vec<Daemon> {
    let Ok(target) = std::fs::metadata(root) else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.filter_map(|e| e.ok()) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let proc_dir = e.path();
        let Ok(raw) = std::fs::read(proc_dir.join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let comm = std::fs::read_to_string(proc_dir.join("comm")).unwrap_or_default();
        let argv0_is_dockerd = args
            .first()
            .and_then(|a| Path::new(a).file_name())
            .is_some_and(|n| n == "dockerd");
        if comm.trim_end() != "dockerd" && !argv0_is_dockerd {
            continue;
        }
        let proc_root = proc_dir.join("root");
        let in_ns = |p: &Path| proc_root.join(p.strip_prefix("/").unwrap_or(p));
        match data_root_of(&args, |p| std::fs::read_to_string(in_ns(p))) {
            Ok(data_root) => {
                let same = std::fs::metadata(in_ns(&data_root))
                    .is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino());
                if same {
                    out.push(Daemon {
                        pid,
                        how: format!("its data root is {}", data_root.display()),
                    });
                }
            }
            Err(why) => out.push(Daemon {
                pid,
                how: format!("its data root is unknown ({why}), so it may be this one"),
            }),
        }
    }
    out
}

/// Every dockerd that uses `root`, by lock and by process; one entry per pid.
pub fn find(root: &Path) -> Vec<Daemon> {
    let mut all = lock_holders(&lock_files(root));
    all.extend(dockerd_processes(root));
    let mut seen = std::collections::BTreeSet::new();
    all.retain(|d| d.pid == 0 || seen.insert(d.pid));
    all
}

/// Exclusive locks on the data root's databases, held while pruning: a dockerd starting
/// meanwhile cannot open them.
#[derive(Debug)]
pub struct DaemonGuard {
    _files: Vec<File>,
}

impl DaemonGuard {
    /// Locks every database file dockerd would lock; `Err` names the holder when one is taken.
    ///
    /// # Errors
    /// A daemon is found (by process or lock), or a database file is locked by someone.
    pub fn acquire(root: &Path) -> Result<DaemonGuard, Daemon> {
        if let Some(d) = find(root).into_iter().next() {
            return Err(d);
        }
        let mut files = Vec::new();
        for p in lock_files(root) {
            let Ok(f) = File::open(&p) else { continue };
            if let Err(e) =
                rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            {
                let holder = lock_holders(std::slice::from_ref(&p)).into_iter().next();
                return Err(holder.unwrap_or(Daemon {
                    pid: 0,
                    how: format!("{} is locked by another process ({e})", p.display()),
                }));
            }
            files.push(f);
        }
        Ok(DaemonGuard { _files: files })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    fn no_config(_: &Path) -> std::io::Result<String> {
        Err(std::io::ErrorKind::NotFound.into())
    }

    #[test]
    fn data_root_from_flags_config_and_default() {
        assert_eq!(
            data_root_of(
                &args("/usr/sbin/dockerd --data-root /srv/d -H fd://"),
                no_config
            ),
            Ok(PathBuf::from("/srv/d"))
        );
        assert_eq!(
            data_root_of(&args("dockerd --data-root=/a --data-root=/b"), no_config),
            Ok(PathBuf::from("/b"))
        );
        assert_eq!(
            data_root_of(&args("dockerd -g /old"), no_config),
            Ok(PathBuf::from("/old"))
        );
        assert_eq!(
            data_root_of(&args("dockerd"), no_config),
            Ok(PathBuf::from("/var/lib/docker"))
        );
        let cfg = |p: &Path| {
            assert_eq!(p, Path::new("/etc/docker/daemon.json"));
            Ok(r#"{"data-root": "/data/docker"}"#.to_owned())
        };
        assert_eq!(
            data_root_of(&args("dockerd"), cfg),
            Ok(PathBuf::from("/data/docker"))
        );
        let cfg = |p: &Path| {
            assert_eq!(p, Path::new("/x.json"));
            Ok("{}".to_owned())
        };
        assert_eq!(
            data_root_of(&args("dockerd --config-file /x.json"), cfg),
            Ok(PathBuf::from("/var/lib/docker"))
        );
        // A named config file that is missing, or a config that is not JSON: unknown.
        assert!(data_root_of(&args("dockerd --config-file /x.json"), no_config).is_err());
        assert!(data_root_of(&args("dockerd"), |_| Ok("{".to_owned())).is_err());
    }

    #[test]
    fn proc_locks_lines() {
        let text = "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 99 08:01:5678 0 EOF\n\
                    2: POSIX  ADVISORY  READ 77 fd:1a:42 0 EOF\n\
                    3: OFDLCK ADVISORY  WRITE -1 00:1f:9 0 EOF\n\
                    garbage\n";
        let l = parse_proc_locks(text);
        assert_eq!(l.len(), 3);
        assert_eq!(
            l[0],
            LockEntry {
                pid: 1234,
                major: 8,
                minor: 1,
                inode: 5678
            }
        );
        assert_eq!((l[1].major, l[1].minor, l[1].inode), (0xfd, 0x1a, 42));
        assert_eq!(l[2].pid, -1);
    }

    #[test]
    fn a_held_flock_names_its_holder_and_blocks_the_guard() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("volumes")).unwrap();
        std::fs::write(root.join("volumes/metadata.db"), b"x").unwrap();
        // Nothing holds it: the guard takes it.
        let g = DaemonGuard::acquire(root).expect("free");
        // While the guard holds it, /proc/locks shows this process as the holder.
        let found = find(root);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].pid, std::process::id());
        assert!(found[0].how.contains("volumes/metadata.db"));
        // And a second guard is refused, naming this process.
        let refused = DaemonGuard::acquire(root).unwrap_err();
        assert_eq!(refused.pid, std::process::id());
        drop(g);
        assert!(find(root).is_empty());
    }
}
