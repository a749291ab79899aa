//! The server loop: a tokio runtime (the crate's only async part), the accept loop with one
//! HTTP/1.1 keep-alive connection task per client, and shutdown on SIGTERM/SIGINT (stop
//! accepting, remove the socket, let requests in flight finish). It never unmounts anything on
//! shutdown: containers keep running on their mounts while the plugin restarts, and the next
//! plugin re-derives which layers are mounted.

use std::future::Future;
use std::os::unix::net::UnixListener as StdUnixListener;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::error::Error;
use crate::layer_store::LayerStore;
use crate::plugin::Plugin;
use crate::router::handle;
use crate::saved_init::InitRecord;
use crate::socket::{self, BoundSocket};
use crate::stall_guard::StallGuard;
use crate::PluginConfig;

/// How long requests in flight may take to finish after a stop signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// First and longest pause after a failed accept (EMFILE and the like); it doubles per failure
/// in a row and starts over after a success.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Binds the socket and serves with store `S` until SIGTERM or SIGINT.
pub(crate) fn run<S: LayerStore>(config: &PluginConfig) -> Result<(), Error> {
    socket::check_name(&config.name)?;
    let path = config
        .socket
        .clone()
        .unwrap_or_else(|| socket::default_path(&config.name));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("strata-docker")
        .enable_all()
        .build()
        .map_err(|source| Error::Runtime {
            what: "start the async runtime",
            source,
        })?;
    let result = runtime.block_on(async {
        let stop = stop_signal()?;
        let (listener, bound) = socket::bind(&path)?;
        let plugin = Arc::new(Plugin::<S>::new(
            Some(InitRecord::for_socket(&path)),
            config.limits,
        ));
        let resumer = Arc::clone(&plugin);
        // Opening a store probes the host and reads the mount table: blocking work.
        let _ = tokio::task::spawn_blocking(move || resumer.resume()).await;
        serve_listener(listener, bound, plugin, stop).await
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

/// Resolves on the first SIGTERM or SIGINT.
fn stop_signal() -> Result<impl Future<Output = ()>, Error> {
    let install = |kind| {
        signal(kind).map_err(|source| Error::Runtime {
            what: "install the signal handlers",
            source,
        })
    };
    let mut term = install(SignalKind::terminate())?;
    let mut int = install(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: stopping"),
            _ = int.recv() => info!("SIGINT: stopping"),
        }
    })
}

/// Accepts connections on `listener` until `stop` resolves, then removes the socket and waits
/// (bounded) for requests in flight. At most `max_connections` are served at once: beyond that
/// nothing is accepted, and new clients wait in the socket's backlog until a connection closes.
pub(crate) async fn serve_listener<S: LayerStore>(
    listener: StdUnixListener,
    bound: BoundSocket,
    plugin: Arc<Plugin<S>>,
    stop: impl Future<Output = ()>,
) -> Result<(), Error> {
    let as_tokio = |source| Error::Socket {
        op: "listen on",
        path: bound.path().to_owned(),
        source,
    };
    listener.set_nonblocking(true).map_err(as_tokio)?;
    let listener = tokio::net::UnixListener::from_std(listener).map_err(as_tokio)?;
    let limits = *plugin.limits();
    info!(
        socket = %bound.path().display(),
        header_timeout = ?limits.header_timeout,
        body_timeout = ?limits.body_timeout,
        max_connections = limits.max_connections,
        "serving the docker graphdriver plugin protocol"
    );
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut backoff = ACCEPT_BACKOFF.0;
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        if slots.available_permits() == 0 {
            debug!(
                max_connections = limits.max_connections,
                "connection limit reached; new clients wait"
            );
        }
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed
            },
            () = &mut stop => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        match accepted {
            Ok((stream, _)) => {
                backoff = ACCEPT_BACKOFF.0;
                let plugin = Arc::clone(&plugin);
                let service = service_fn(move |req| handle(Arc::clone(&plugin), req));
                let io = StallGuard::new(stream, limits.body_timeout);
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_timeout)
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(io), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        debug!(error = %e, "connection ended with an error");
                    }
                    drop(slot);
                });
            }
            Err(e) => {
                // EMFILE and the like: back off instead of spinning; the client stays queued.
                warn!(error = %e, pause = ?backoff, "accept failed");
                drop(slot);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = &mut stop => break,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
            }
        }
    }
    drop(listener);
    drop(bound);
    tokio::select! {
        () = graceful.shutdown() => debug!("all connections closed"),
        () = tokio::time::sleep(DRAIN_TIMEOUT) => warn!("requests still running after {DRAIN_TIMEOUT:?}; stopping anyway"),
    }
    Ok(())
}
