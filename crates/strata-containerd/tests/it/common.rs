//! The harness: an in-process server on a temporary socket with a blocking client, a server
//! process that is killed on drop, and containerd's way of performing mount descriptions.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use strata_containerd::proto::snapshots::snapshots_client::SnapshotsClient;
use strata_containerd::proto::snapshots::{
    CleanupRequest, CommitSnapshotRequest, Info, ListSnapshotsRequest, MountsRequest,
    PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest, UpdateSnapshotRequest,
    UsageRequest, UsageResponse, ViewSnapshotRequest,
};
use strata_containerd::proto::types::Mount;
use strata_containerd::{Config, Server};
use strata_testkit::TempHome;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};

/// A blocking client of the snapshot API.
pub struct Client {
    rt: tokio::runtime::Runtime,
    c: SnapshotsClient<Channel>,
}

pub fn labels(kv: &[(&str, &str)]) -> HashMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn code<T: std::fmt::Debug>(r: Result<T, Status>) -> Code {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(s) => s.code(),
    }
}

impl Client {
    pub fn connect(socket: &Path) -> Result<Client, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let path = socket.to_owned();
        let c = rt
            .block_on(async move {
                let ch = Endpoint::try_from("http://[::]:50051")
                    .unwrap()
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(path).await?,
                            ))
                        }
                    }))
                    .await?;
                Ok::<_, tonic::transport::Error>(SnapshotsClient::new(ch))
            })
            .map_err(|e| format!("connect {}: {e:?}", socket.display()))?;
        Ok(Client { rt, c })
    }

    pub fn prepare(&mut self, key: &str, parent: &str) -> Result<Vec<Mount>, Status> {
        self.prepare_labels(key, parent, HashMap::new())
    }

    pub fn prepare_labels(
        &mut self,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>, Status> {
        let req = PrepareSnapshotRequest {
            snapshotter: "strata".into(),
            key: key.into(),
            parent: parent.into(),
            labels,
        };
        let c = &mut self.c;
        self.rt
            .block_on(c.prepare(req))
            .map(|r| r.into_inner().mounts)
    }

    pub fn view(&mut self, key: &str, parent: &str) -> Result<Vec<Mount>, Status> {
        let req = ViewSnapshotRequest {
            snapshotter: "strata".into(),
            key: key.into(),
            parent: parent.into(),
            labels: HashMap::new(),
        };
        let c = &mut self.c;
        self.rt.block_on(c.view(req)).map(|r| r.into_inner().mounts)
    }

    pub fn mounts(&mut self, key: &str) -> Result<Vec<Mount>, Status> {
        let req = MountsRequest {
            snapshotter: "strata".into(),
            key: key.into(),
        };
        let c = &mut self.c;
        self.rt
            .block_on(c.mounts(req))
            .map(|r| r.into_inner().mounts)
    }

    pub fn commit(&mut self, name: &str, key: &str) -> Result<(), Status> {
        self.commit_full(name, key, HashMap::new(), "")
    }

    pub fn commit_full(
        &mut self,
        name: &str,
        key: &str,
        labels: HashMap<String, String>,
        parent: &str,
    ) -> Result<(), Status> {
        let req = CommitSnapshotRequest {
            snapshotter: "strata".into(),
            name: name.into(),
            key: key.into(),
            labels,
            parent: parent.into(),
        };
        let c = &mut self.c;
        self.rt.block_on(c.commit(req)).map(|_| ())
    }

    pub fn remove(&mut self, key: &str) -> Result<(), Status> {
        let req = RemoveSnapshotRequest {
            snapshotter: "strata".into(),
            key: key.into(),
        };
        let c = &mut self.c;
        self.rt.block_on(c.remove(req)).map(|_| ())
    }

    pub fn stat(&mut self, key: &str) -> Result<Info, Status> {
        let req = StatSnapshotRequest {
            snapshotter: "strata".into(),
            key: key.into(),
        };
        let c = &mut self.c;
        self.rt
            .block_on(c.stat(req))
            .map(|r| r.into_inner().info.unwrap())
    }

    pub fn update(
        &mut self,
        key: &str,
        labels: HashMap<String, String>,
        paths: &[&str],
    ) -> Result<Info, Status> {
        let req = UpdateSnapshotRequest {
            snapshotter: "strata".into(),
            info: Some(Info {
                name: key.into(),
                labels,
                ..Info::default()
            }),
            update_mask: (!paths.is_empty()).then(|| prost_types::FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
        };
        let c = &mut self.c;
        self.rt
            .block_on(c.update(req))
            .map(|r| r.into_inner().info.unwrap())
    }

    /// Names of the listed snapshots, sorted.
    pub fn list(&mut self, filters: &[&str]) -> Result<Vec<Info>, Status> {
        let req = ListSnapshotsRequest {
            snapshotter: "strata".into(),
            filters: filters.iter().map(|f| f.to_string()).collect(),
        };
        let c = &mut self.c;
        self.rt.block_on(async move {
            let mut stream = c.list(req).await?.into_inner();
            let mut out = Vec::new();
            while let Some(msg) = stream.message().await? {
                out.extend(msg.info);
            }
            Ok(out)
        })
    }

    pub fn names(&mut self, filters: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = self
            .list(filters)
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        v.sort();
        v
    }

    pub fn usage(&mut self, key: &str) -> Result<UsageResponse, Status> {
        let req = UsageRequest {
            snapshotter: "strata".into(),
            key: key.into(),
        };
        let c = &mut self.c;
        self.rt.block_on(c.usage(req)).map(|r| r.into_inner())
    }

    pub fn cleanup(&mut self) -> Result<(), Status> {
        let req = CleanupRequest {
            snapshotter: "strata".into(),
        };
        let c = &mut self.c;
        self.rt.block_on(c.cleanup(req)).map(|_| ())
    }
}

/// An in-process server on a fresh root (a [`TempHome`], so leaked mounts fail the test).
pub struct Harness {
    pub home: TempHome,
    pub snap: std::sync::Arc<strata_containerd::Snapshotter>,
    pub socket: PathBuf,
    pub client: Client,
    rt: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<strata_containerd::Result<()>>>,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_options(strata::Options::default())
    }

    pub fn with_options(options: strata::Options) -> Harness {
        let home = TempHome::new();
        let socket = home.outside().join("ctrd.sock");
        let config = Config {
            root: home.home().to_owned(),
            socket: socket.clone(),
            options,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = Server::bind(&config).unwrap();
        let snap = std::sync::Arc::clone(server.snapshotter());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = rt.spawn(server.run(async move {
            let _ = stopped.await;
        }));
        let client = Client::connect(&socket).unwrap();
        Harness {
            home,
            snap,
            socket,
            client,
            rt: Some(rt),
            stop: Some(stop),
            served: Some(served),
        }
    }

    pub fn root(&self) -> &Path {
        self.home.home()
    }

    /// Stops the server and checks it went cleanly (socket removed).
    pub fn stop(&mut self) {
        if let (Some(stop), Some(rt), Some(served)) =
            (self.stop.take(), self.rt.take(), self.served.take())
        {
            let _ = stop.send(());
            rt.block_on(served).unwrap().unwrap();
            rt.shutdown_timeout(Duration::from_secs(5));
            assert!(!self.socket.exists(), "the socket outlived the server");
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop();
        } else if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A directory with something mounted on it the way containerd does; unmounted on drop.
pub struct Mounted {
    pub target: PathBuf,
    /// The directory containerd would chdir into (long option strings only).
    pub chdir: Option<String>,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = strata_sys::mount::unmount_detach(&self.target);
    }
}

/// Performs `mounts` on `target` as containerd does on Linux: bind (recursive) and a read-only
/// remount for `ro`; anything else with legacy mount(2), the option string moved to relative
/// lower paths from their common directory when it reaches page size − 512 bytes.
pub fn ctrd_mount(mounts: &[Mount], target: &Path) -> Mounted {
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    let m = &mounts[0];
    std::fs::create_dir_all(target).unwrap();
    let ro = m.options.iter().any(|o| o == "ro");
    match m.r#type.as_str() {
        "bind" => {
            rustix::mount::mount_bind_recursive(m.source.as_str(), target).unwrap();
            if ro {
                rustix::mount::mount_remount(
                    target,
                    rustix::mount::MountFlags::BIND | rustix::mount::MountFlags::RDONLY,
                    "",
                )
                .unwrap();
            }
            Mounted {
                target: target.to_owned(),
                chdir: None,
            }
        }
        "overlay" => {
            let page = strata_containerd::mounts::page_size();
            let (data, chdir) = strata_containerd::mounts::containerd_data(&m.options, page);
            assert!(data.len() < page, "{} bytes of options", data.len());
            strata_sys::mount::mount_overlay_legacy(
                &data,
                target,
                ro,
                chdir.as_deref().map(Path::new),
            )
            .unwrap_or_else(|e| panic!("mount {data}: {e}"));
            Mounted {
                target: target.to_owned(),
                chdir,
            }
        }
        other => panic!("unexpected mount type {other}"),
    }
}

/// A tree as (relative path → kind and content) for comparisons.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let v = if m.is_dir() {
                stack.push(p.clone());
                format!("dir {:o}", m.mode() & 0o7777)
            } else if m.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_file() {
                format!("file {}", std::fs::read_to_string(&p).unwrap_or_default())
            } else {
                format!("other {:o} {}", m.mode(), m.rdev())
            };
            out.insert(rel, v);
        }
    }
    out
}

/// A server process (this test binary re-executed as `process::child_server`); killed with
/// SIGKILL on drop unless it has exited.
pub struct ServerProcess {
    pub child: Child,
    pub socket: PathBuf,
}

impl ServerProcess {
    pub fn start(root: &Path, socket: &Path) -> ServerProcess {
        ServerProcess::start_env(root, socket, &[])
    }

    pub fn start_env(root: &Path, socket: &Path, env: &[(&str, &str)]) -> ServerProcess {
        let child = Command::new(std::env::current_exe().unwrap())
            .envs(env.iter().copied())
            .args([
                "--exact",
                "process::child_server",
                "--ignored",
                "--nocapture",
            ])
            .env("STRATA_CTRD_CHILD_ROOT", root)
            .env("STRATA_CTRD_CHILD_SOCKET", socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut p = ServerProcess {
            child,
            socket: socket.to_owned(),
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("the server exited early: {st}");
            }
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("the server did not listen on {}", self.socket.display());
    }

    pub fn pid(&self) -> rustix::process::Pid {
        rustix::process::Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap()
    }

    /// Waits for the process to end by itself.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        rustix::process::kill_process(self.pid(), rustix::process::Signal::TERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "the server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill9();
        }
    }
}
