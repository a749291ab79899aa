//! Serving: a tokio runtime (the crate's only async part), tonic's HTTP/2 server on the unix
//! socket, and shutdown on SIGTERM/SIGINT (stop accepting, remove the socket, let requests in
//! flight finish, bounded). The snapshotter mounts nothing itself, so stopping leaves no mount.

use std::future::Future;
use std::os::unix::net::UnixListener as StdUnixListener;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio_stream::wrappers::UnixListenerStream;

use crate::error::{Error, Result};
use crate::proto::snapshots::snapshots_server::SnapshotsServer;
use crate::service::Service;
use crate::snapshotter::Snapshotter;
use crate::socket::{self, BoundSocket};
use crate::Config;

/// How long requests in flight may take after a stop signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// A snapshotter bound to its socket, ready to serve.
#[derive(Debug)]
pub struct Server {
    snapshotter: Arc<Snapshotter>,
    listener: StdUnixListener,
    bound: BoundSocket,
}

impl Server {
    /// Opens the snapshotter at `config.root` (recovering what an earlier process left) and
    /// then binds the socket, so that the socket answers as soon as it exists.
    ///
    /// # Errors
    /// The store or metadata cannot be opened, or the socket cannot be bound.
    pub fn bind(config: &Config) -> Result<Server> {
        let snapshotter = Arc::new(Snapshotter::open(&config.root, config.options.clone())?);
        let (listener, bound) = socket::bind(&config.socket)?;
        Ok(Server {
            snapshotter,
            listener,
            bound,
        })
    }

    /// The snapshotter.
    pub fn snapshotter(&self) -> &Arc<Snapshotter> {
        &self.snapshotter
    }

    /// Serves until `stop` resolves, then removes the socket and waits (bounded) for requests
    /// in flight. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// The listener cannot be registered with the runtime, or serving failed.
    pub async fn run(self, stop: impl Future<Output = ()> + Send) -> Result<()> {
        let sock = |source| Error::Socket {
            op: "listen on",
            path: self.bound.path().to_owned(),
            source,
        };
        self.listener.set_nonblocking(true).map_err(sock)?;
        let listener = tokio::net::UnixListener::from_std(self.listener).map_err(sock)?;
        tracing::info!(socket = %self.bound.path().display(), home = %self.snapshotter.driver().home().display(), "serving containerd snapshots");
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let bound = self.bound;
        let shutdown = async move {
            stop.await;
            // No new connections from here on; the socket file goes at once.
            drop(bound);
            let _ = stopped_tx.send(());
        };
        let service = Service::new(self.snapshotter);
        let in_flight = service.in_flight();
        let serve = tonic::transport::Server::builder()
            .add_service(SnapshotsServer::new(service))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown);
        tokio::pin!(serve);
        // tonic's graceful shutdown also waits for idle connections to close, and containerd
        // never closes its own: once stopped, wait for the store calls in flight (bounded),
        // then drop the connections.
        let drained = async {
            if stopped_rx.await.is_err() {
                return std::future::pending().await;
            }
            let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
            while in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!(
                        "requests still running after {DRAIN_TIMEOUT:?}; stopping anyway"
                    );
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let served = tokio::select! {
            r = &mut serve => r,
            () = drained => Ok(()),
        };
        served.map_err(|e| Error::Runtime {
            what: "serve gRPC",
            source: Box::new(e),
        })
    }
}

/// Resolves on the first SIGTERM or SIGINT.
fn stop_signal() -> Result<impl Future<Output = ()> + Send> {
    let install = |kind| {
        signal(kind).map_err(|e| Error::Runtime {
            what: "install the signal handlers",
            source: Box::new(e),
        })
    };
    let mut term = install(SignalKind::terminate())?;
    let mut int = install(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
    })
}

/// Runs [`Server`] on a runtime of its own until SIGTERM or SIGINT.
pub(crate) fn serve(config: &Config) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("strata-containerd")
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime {
            what: "start the async runtime",
            source: Box::new(e),
        })?;
    let result = runtime.block_on(async {
        let stop = stop_signal()?;
        // Opening runs recovery: blocking work.
        let config = config.clone();
        let server = tokio::task::spawn_blocking(move || Server::bind(&config))
            .await
            .map_err(|e| Error::Runtime {
                what: "open the snapshotter",
                source: Box::new(e),
            })??;
        server.run(stop).await
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}
