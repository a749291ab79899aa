//! HTTP-level tests of the plugin server against a fake store (no root, no mounts): keep-alive,
//! streaming in both directions, errors as protocol replies, concurrency, shutdown, resume.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use strata::{LayerId, StorageOpts};
use tokio::sync::{mpsc, oneshot};

use crate::body::{ChannelBody, Chunk};
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::saved_init::InitRecord;
use crate::socket;
use crate::wire::{self, Change, InitRequest};

/// A store whose layers are directories holding the last applied tar as `blob`.
#[derive(Debug)]
struct FakeStore {
    root: PathBuf,
    rendezvous: Arc<(Mutex<u32>, Condvar)>,
}

impl FakeStore {
    fn layer(&self, id: &LayerId) -> PathBuf {
        self.root.join(id.as_str())
    }

    fn missing(id: &LayerId) -> strata::Error {
        strata::Error::LayerNotFound { id: id.to_string() }
    }
}

impl LayerStore for FakeStore {
    fn open(init: &InitRequest) -> strata::Result<Self> {
        let root = PathBuf::from(&init.home);
        std::fs::create_dir_all(&root).map_err(|source| strata::Error::Io {
            op: "create home",
            path: root.clone(),
            source,
        })?;
        Ok(FakeStore {
            root,
            rendezvous: Arc::new((Mutex::new(0), Condvar::new())),
        })
    }

    fn home(&self) -> &Path {
        &self.root
    }

    /// Layers with a `mounted` marker file (written by `get`, removed by `put`).
    fn mounted(&self) -> strata::Result<Vec<LayerId>> {
        let mut v = Vec::new();
        for entry in std::fs::read_dir(&self.root).unwrap() {
            let entry = entry.unwrap();
            if entry.path().join("mounted").exists() {
                v.push(entry.file_name().to_str().unwrap().parse().unwrap());
            }
        }
        Ok(v)
    }

    fn status(&self) -> Vec<(String, String)> {
        vec![("Backing Filesystem".into(), "fake".into())]
    }

    fn create(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        _: &StorageOpts,
    ) -> strata::Result<()> {
        if let Some(p) = parent {
            if !self.exists(p) {
                return Err(strata::Error::ParentNotFound {
                    id: id.to_string(),
                    parent: p.to_string(),
                });
            }
        }
        let dir = self.layer(id);
        std::fs::create_dir(&dir).map_err(|source| strata::Error::Io {
            op: "create layer directory",
            path: dir,
            source,
        })
    }

    fn create_read_write(
        &self,
        id: &LayerId,
        parent: Option<&LayerId>,
        opts: &StorageOpts,
    ) -> strata::Result<()> {
        if opts.size.is_some() {
            return Err(strata::Error::StorageOptNotSupported {
                id: id.to_string(),
                reason: "no quota in the fake".into(),
            });
        }
        self.create(id, parent, opts)
    }

    fn remove(&self, id: &LayerId) -> strata::Result<()> {
        let dir = self.layer(id);
        std::fs::remove_dir_all(&dir).map_err(|source| strata::Error::Io {
            op: "remove layer directory",
            path: dir,
            source,
        })
    }

    fn exists(&self, id: &LayerId) -> bool {
        self.layer(id).is_dir()
    }

    fn get(&self, id: &LayerId, _: &str) -> strata::Result<PathBuf> {
        if id.as_str().starts_with("rendezvous") {
            // Returns only once two such calls are in flight at the same time.
            let (count, cv) = &*self.rendezvous;
            let mut n = count.lock().unwrap();
            *n += 1;
            cv.notify_all();
            let (n, timeout) = cv
                .wait_timeout_while(n, Duration::from_secs(20), |n| *n < 2)
                .unwrap();
            if timeout.timed_out() {
                return Err(strata::Error::Corrupt {
                    id: id.to_string(),
                    what: format!("only {} call(s) in flight", *n),
                });
            }
        }
        if !self.exists(id) {
            return Err(Self::missing(id));
        }
        std::fs::write(self.layer(id).join("mounted"), b"").unwrap();
        Ok(self.layer(id))
    }

    fn put(&self, id: &LayerId) -> strata::Result<()> {
        if !self.exists(id) {
            return Err(Self::missing(id));
        }
        let _ = std::fs::remove_file(self.layer(id).join("mounted"));
        Ok(())
    }

    fn metadata(&self, id: &LayerId) -> strata::Result<BTreeMap<String, String>> {
        let mut m = BTreeMap::new();
        m.insert(
            "MergedDir".into(),
            self.layer(id).join("merged").display().to_string(),
        );
        Ok(m)
    }

    fn cleanup(&self) -> strata::Result<()> {
        Ok(())
    }

    fn apply_diff(
        &self,
        id: &LayerId,
        _: Option<&LayerId>,
        tar: &mut dyn Read,
    ) -> strata::Result<u64> {
        if !self.exists(id) {
            return Err(Self::missing(id));
        }
        let blob = self.layer(id).join("blob");
        let io_err = |source| strata::Error::Io {
            op: "write blob",
            path: blob.clone(),
            source,
        };
        let mut f = std::fs::File::create(&blob).map_err(io_err)?;
        io::copy(tar, &mut f).map_err(io_err)
    }

    fn diff(&self, id: &LayerId, _: Option<&LayerId>, out: &mut dyn Write) -> strata::Result<()> {
        let blob = self.layer(id).join("blob");
        let io_err = |source| strata::Error::Io {
            op: "send blob",
            path: blob.clone(),
            source,
        };
        if id.as_str() == "fail-late" {
            out.write_all(&vec![1u8; 1 << 20]).map_err(io_err)?;
            return Err(io_err(io::Error::other("disk went away")));
        }
        let mut f = std::fs::File::open(&blob).map_err(io_err)?;
        io::copy(&mut f, out).map_err(io_err)?;
        Ok(())
    }

    fn changes(&self, id: &LayerId, _: Option<&LayerId>) -> strata::Result<Vec<Change>> {
        if !self.exists(id) {
            return Err(Self::missing(id));
        }
        Ok(vec![Change {
            path: "/blob".into(),
            kind: wire::CHANGE_ADD,
        }])
    }

    fn diff_size(&self, id: &LayerId, _: Option<&LayerId>) -> strata::Result<u64> {
        let blob = self.layer(id).join("blob");
        std::fs::metadata(&blob)
            .map(|m| m.len())
            .map_err(|source| strata::Error::Io {
                op: "stat blob",
                path: blob,
                source,
            })
    }
}

type ReqBody = BoxBody<Bytes, io::Error>;

struct Server {
    dir: tempfile::TempDir,
    socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), crate::Error>>,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        Server::start_in(dir).await
    }

    async fn start_in(dir: tempfile::TempDir) -> Server {
        Server::start_with(dir, crate::Limits::default()).await
    }

    async fn start_with(dir: tempfile::TempDir, limits: crate::Limits) -> Server {
        let socket = dir.path().join("plugins/test.sock");
        let (listener, bound) = socket::bind(&socket).unwrap();
        let plugin = Arc::new(Plugin::<FakeStore>::new(
            Some(InitRecord::for_socket(&socket)),
            limits,
        ));
        plugin.resume();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(crate::server::serve_listener(
            listener,
            bound,
            plugin,
            async {
                let _ = stopped.await;
            },
        ));
        Server {
            dir,
            socket,
            stop: Some(stop),
            done,
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    async fn stop(mut self) -> tempfile::TempDir {
        self.stop.take().unwrap().send(()).unwrap();
        (&mut self.done).await.unwrap().unwrap();
        self.dir
    }
}

struct Client {
    sender: http1::SendRequest<ReqBody>,
}

impl Client {
    async fn connect(path: &Path) -> Client {
        let stream = tokio::net::UnixStream::connect(path).await.unwrap();
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Client { sender }
    }

    async fn send(&mut self, uri: &str, body: ReqBody) -> hyper::Response<hyper::body::Incoming> {
        self.sender.ready().await.unwrap();
        let req = Request::post(uri)
            .header("Accept", wire::PLUGIN_MEDIA_TYPE)
            .body(body)
            .unwrap();
        self.sender.send_request(req).await.unwrap()
    }

    async fn call(&mut self, method: &str, body: &str) -> (StatusCode, String) {
        let body = Full::new(Bytes::from(body.to_owned()))
            .map_err(|never| match never {})
            .boxed();
        let resp = self.send(&format!("/{method}"), body).await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn init(&mut self, home: &Path) {
        let body = format!(
            r#"{{"Home":"{}","Opts":null,"UIDMaps":null,"GIDMaps":null}}"#,
            home.display()
        );
        assert_eq!(
            self.call("GraphDriver.Init", &body).await,
            (StatusCode::OK, "{}".into())
        );
    }

    /// Sends `total` bytes of a repeating pattern as a chunked ApplyDiff body.
    async fn apply_diff(&mut self, query: &str, total: usize) -> (StatusCode, String) {
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            let chunk = 64 * 1024;
            let mut sent = 0;
            while sent < total {
                let n = chunk.min(total - sent);
                let data: Vec<u8> = (sent..sent + n).map(|i| (i % 251) as u8).collect();
                if tx.send(Chunk::Data(Bytes::from(data))).await.is_err() {
                    return;
                }
                sent += n;
            }
            let _ = tx.send(Chunk::End).await;
        });
        let body = ChannelBody::new(Bytes::new(), rx).boxed();
        let resp = self
            .send(&format!("/GraphDriver.ApplyDiff?{query}"), body)
            .await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }
}

fn err_of(body: &str) -> String {
    let e: wire::ErrorResponse = serde_json::from_str(body).unwrap_or_else(|_| panic!("{body}"));
    e.err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activate_and_capabilities_reply_golden_json() {
    let server = Server::start().await;
    let mut c = Client::connect(&server.socket).await;
    assert_eq!(
        c.call("Plugin.Activate", "").await,
        (StatusCode::OK, r#"{"Implements":["GraphDriver"]}"#.into())
    );
    assert_eq!(
        c.call("GraphDriver.Capabilities", "null").await,
        (
            StatusCode::OK,
            r#"{"Capabilities":{"ReproducesExactDiffs":false}}"#.into()
        )
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_before_init_is_err_reply() {
    let server = Server::start().await;
    let mut c = Client::connect(&server.socket).await;
    let (status, body) = c.call("GraphDriver.Status", "{}").await;
    assert_eq!(status, StatusCode::OK);
    assert!(err_of(&body).contains("not initialised"), "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_calls_on_one_connection_reply_in_protocol_shape() {
    let server = Server::start().await;
    let home = server.home();
    let mut c = Client::connect(&server.socket).await;
    c.init(&home).await;
    assert_eq!(
        c.call("GraphDriver.Status", "{}").await.1,
        r#"{"Status":[["Backing Filesystem","fake"]]}"#
    );
    assert_eq!(
        c.call("GraphDriver.Create", r#"{"ID":"base"}"#).await.1,
        "{}"
    );
    assert_eq!(
        c.call(
            "GraphDriver.CreateReadWrite",
            r#"{"ID":"c-init","Parent":"base","StorageOpt":{}}"#
        )
        .await
        .1,
        "{}"
    );
    assert_eq!(
        c.call("GraphDriver.Exists", r#"{"ID":"c-init"}"#).await.1,
        r#"{"Exists":true}"#
    );
    assert_eq!(
        c.call("GraphDriver.Exists", r#"{"ID":"nope"}"#).await.1,
        r#"{"Exists":false}"#
    );
    assert_eq!(
        c.call("GraphDriver.Get", r#"{"ID":"base","MountLabel":""}"#)
            .await
            .1,
        format!(r#"{{"Dir":"{}"}}"#, home.join("base").display())
    );
    assert_eq!(c.call("GraphDriver.Put", r#"{"ID":"base"}"#).await.1, "{}");
    assert_eq!(
        c.call("GraphDriver.GetMetadata", r#"{"ID":"base"}"#)
            .await
            .1,
        format!(
            r#"{{"Metadata":{{"MergedDir":"{}"}}}}"#,
            home.join("base/merged").display()
        )
    );
    assert_eq!(
        c.call("GraphDriver.Changes", r#"{"ID":"c-init","Parent":"base"}"#)
            .await
            .1,
        r#"{"Changes":[{"Path":"/blob","Kind":1}]}"#
    );
    assert_eq!(
        c.call("GraphDriver.Remove", r#"{"ID":"c-init"}"#).await.1,
        "{}"
    );
    assert!(!home.join("c-init").exists());
    assert_eq!(c.call("GraphDriver.Cleanup", "null").await.1, "{}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_errors_reply_err_with_the_whole_chain() {
    let server = Server::start().await;
    let mut c = Client::connect(&server.socket).await;
    c.init(&server.home()).await;
    let (status, body) = c.call("GraphDriver.Remove", r#"{"ID":"absent"}"#).await;
    assert_eq!(status, StatusCode::OK);
    let err = err_of(&body);
    // The variant's message, then its io cause.
    assert!(err.starts_with("remove layer directory "), "{err}");
    assert!(err.contains("absent: No such file or directory"), "{err}");

    let (_, body) = c.call("GraphDriver.Create", r#"{"ID":"../escape"}"#).await;
    assert!(err_of(&body).contains("invalid layer id"), "{body}");
    let (_, body) = c
        .call(
            "GraphDriver.CreateReadWrite",
            r#"{"ID":"x","StorageOpt":{"bogus":"1"}}"#,
        )
        .await;
    assert!(err_of(&body).contains("bogus"), "{body}");
    let (_, body) = c.call("GraphDriver.Get", r#"{"ID":"#).await;
    assert!(
        err_of(&body).starts_with("decode the request body of GraphDriver.Get: "),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_and_get_verb_are_refused_with_err() {
    let server = Server::start().await;
    let mut c = Client::connect(&server.socket).await;
    let (status, body) = c.call("VolumeDriver.Create", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(err_of(&body).contains("VolumeDriver.Create"));
    c.sender.ready().await.unwrap();
    let req = Request::get("/Plugin.Activate")
        .body(
            Full::new(Bytes::new())
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap();
    let resp = c.sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_diff_chunked_body_streams_and_diff_returns_it_on_the_same_connection() {
    let server = Server::start().await;
    let mut c = Client::connect(&server.socket).await;
    c.init(&server.home()).await;
    c.call("GraphDriver.Create", r#"{"ID":"big"}"#).await;
    let total = 24 * 1024 * 1024 + 17;
    assert_eq!(
        c.apply_diff("id=big&parent=", total).await,
        (StatusCode::OK, format!(r#"{{"Size":{total}}}"#))
    );
    assert_eq!(
        c.call("GraphDriver.DiffSize", r#"{"ID":"big"}"#).await.1,
        format!(r#"{{"Size":{total}}}"#)
    );
    let resp = c
        .send(
            "/GraphDriver.Diff",
            Full::new(Bytes::from_static(br#"{"ID":"big"}"#))
                .map_err(|never| match never {})
                .boxed(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut got = 0usize;
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        for (k, b) in data.iter().enumerate() {
            assert_eq!(*b, ((got + k) % 251) as u8, "byte {}", got + k);
        }
        got += data.len();
    }
    assert_eq!(got, total);
    // Still the same keep-alive connection.
    assert_eq!(
        c.call("GraphDriver.Exists", r#"{"ID":"big"}"#).await.1,
        r#"{"Exists":true}"#
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_diff_store_failure_drains_body_and_keeps_connection() {
    let server = Server::start().await;
    let mut c = Client::connect(&server.socket).await;
    c.init(&server.home()).await;
    let (status, body) = c.apply_diff("id=missing&parent=", 8 * 1024 * 1024).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(err_of(&body), "layer missing does not exist");
    let (_, body) = c.apply_diff("id=&parent=", 1024).await;
    assert!(err_of(&body).contains("invalid layer id"), "{body}");
    assert_eq!(c.call("Plugin.Activate", "").await.0, StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_failure_before_data_is_an_error_status() {
    let server = Server::start().await;
    let mut c = Client::connect(&server.socket).await;
    c.init(&server.home()).await;
    c.call("GraphDriver.Create", r#"{"ID":"empty"}"#).await;
    let (status, body) = c.call("GraphDriver.Diff", r#"{"ID":"empty"}"#).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(err_of(&body).starts_with("send blob "), "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_failure_after_data_aborts_the_body() {
    let server = Server::start().await;
    let mut c = Client::connect(&server.socket).await;
    c.init(&server.home()).await;
    c.call("GraphDriver.Create", r#"{"ID":"fail-late"}"#).await;
    let resp = c
        .send(
            "/GraphDriver.Diff",
            Full::new(Bytes::from_static(br#"{"ID":"fail-late"}"#))
                .map_err(|never| match never {})
                .boxed(),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.into_body().collect().await.is_err(),
        "a failed diff must not end cleanly"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_on_two_connections_run_concurrently() {
    let server = Server::start().await;
    let mut a = Client::connect(&server.socket).await;
    let mut b = Client::connect(&server.socket).await;
    a.init(&server.home()).await;
    a.call("GraphDriver.Create", r#"{"ID":"rendezvous1"}"#)
        .await;
    a.call("GraphDriver.Create", r#"{"ID":"rendezvous2"}"#)
        .await;
    // Each Get returns only once both are inside the store at the same time.
    let (ra, rb) = tokio::join!(
        a.call("GraphDriver.Get", r#"{"ID":"rendezvous1"}"#),
        b.call("GraphDriver.Get", r#"{"ID":"rendezvous2"}"#)
    );
    assert!(ra.1.starts_with(r#"{"Dir":"#), "{}", ra.1);
    assert!(rb.1.starts_with(r#"{"Dir":"#), "{}", rb.1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_removes_the_socket() {
    let server = Server::start().await;
    let socket = server.socket.clone();
    let mut idle = Client::connect(&socket).await;
    assert_eq!(idle.call("Plugin.Activate", "").await.0, StatusCode::OK);
    assert!(socket.exists());
    // An idle keep-alive connection does not hold the stop up.
    let _dir = server.stop().await;
    assert!(!socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_plugin_resumes_the_last_init_until_cleanup() {
    let server = Server::start().await;
    let home = server.home();
    let mut c = Client::connect(&server.socket).await;
    c.init(&home).await;
    c.call("GraphDriver.Create", r#"{"ID":"kept"}"#).await;
    drop(c);
    let dir = server.stop().await;

    // A new plugin on the same socket answers without a new Init.
    let server = Server::start_in(dir).await;
    let mut c = Client::connect(&server.socket).await;
    assert_eq!(
        c.call("GraphDriver.Exists", r#"{"ID":"kept"}"#).await.1,
        r#"{"Exists":true}"#
    );
    assert_eq!(c.call("GraphDriver.Cleanup", "").await.1, "{}");
    drop(c);
    let dir = server.stop().await;

    // After Cleanup (dockerd stopped) a restarted plugin waits for dockerd's Init.
    let server = Server::start_in(dir).await;
    let mut c = Client::connect(&server.socket).await;
    let (_, body) = c.call("GraphDriver.Exists", r#"{"ID":"kept"}"#).await;
    assert!(err_of(&body).contains("not initialised"), "{body}");
    server.stop().await;
}
