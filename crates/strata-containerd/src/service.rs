//! The gRPC service: one handler per RPC of `containerd.services.snapshots.v1.Snapshots`.
//! Each decodes its request, runs one [`Snapshotter`] call on a blocking thread (the store
//! does synchronous filesystem work and fsyncs) and encodes the answer; errors become status
//! codes in one place, [`Error::to_status`]. List streams its answer in batches.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::filters::Filter;
use crate::meta::{Kind as MetaKind, Record, Time};
use crate::proto::snapshots::snapshots_server::Snapshots;
use crate::proto::snapshots::{
    CleanupRequest, CommitSnapshotRequest, Info, Kind, ListSnapshotsRequest, ListSnapshotsResponse,
    MountsRequest, MountsResponse, PrepareSnapshotRequest, PrepareSnapshotResponse,
    RemoveSnapshotRequest, StatSnapshotRequest, StatSnapshotResponse, UpdateSnapshotRequest,
    UpdateSnapshotResponse, UsageRequest, UsageResponse, ViewSnapshotRequest, ViewSnapshotResponse,
};
use crate::snapshotter::Snapshotter;

/// Snapshots per List message (as containerd's own service batches them).
const LIST_BATCH: usize = 100;

/// The service on one snapshotter.
#[derive(Debug, Clone)]
pub struct Service {
    inner: Arc<Snapshotter>,
    in_flight: Arc<AtomicUsize>,
}

/// Counts a request in flight until dropped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Service {
    /// A service on `snapshotter`.
    pub fn new(snapshotter: Arc<Snapshotter>) -> Service {
        Service {
            inner: snapshotter,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The number of store calls running now (shutdown waits for them, not for idle
    /// connections: containerd keeps its connection open for good).
    pub fn in_flight(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.in_flight)
    }

    /// Runs `f` on a blocking thread; its error becomes the status.
    async fn run<T: Send + 'static>(
        &self,
        rpc: &'static str,
        key: String,
        f: impl FnOnce(&Snapshotter) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Status> {
        let s = Arc::clone(&self.inner);
        let start = Instant::now();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let counted = InFlight(Arc::clone(&self.in_flight));
        let out = tokio::task::spawn_blocking(move || {
            let _counted = counted;
            f(&s)
        })
        .await
        .map_err(|e| Status::internal(format!("{rpc}: the worker failed: {e}")))?;
        match &out {
            Ok(_) => tracing::debug!(rpc, key, took = ?start.elapsed(), "ok"),
            Err(e) => tracing::debug!(rpc, key, took = ?start.elapsed(), code = ?e.code(), "{e}"),
        }
        out.map_err(|e| e.to_status())
    }
}

fn labels(m: HashMap<String, String>) -> BTreeMap<String, String> {
    m.into_iter().collect()
}

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn timestamp(t: Time) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.secs,
        nanos: i32::try_from(t.nanos).unwrap_or(0),
    }
}

/// A record as containerd's `Info`.
pub fn info(name: String, r: Record) -> Info {
    Info {
        name,
        parent: r.parent.unwrap_or_default(),
        kind: match r.kind {
            MetaKind::View => Kind::View,
            MetaKind::Active => Kind::Active,
            MetaKind::Committed => Kind::Committed,
        } as i32,
        created_at: Some(timestamp(r.created)),
        updated_at: Some(timestamp(r.updated)),
        labels: r.labels.into_iter().collect(),
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[tonic::async_trait]
impl Snapshots for Service {
    async fn prepare(
        &self,
        request: Request<PrepareSnapshotRequest>,
    ) -> Result<Response<PrepareSnapshotResponse>, Status> {
        let r = request.into_inner();
        let key = r.key.clone();
        let mounts = self
            .run("Prepare", key, move |s| {
                s.prepare(&r.key, opt(r.parent).as_deref(), labels(r.labels))
            })
            .await?;
        Ok(Response::new(PrepareSnapshotResponse { mounts }))
    }

    async fn view(
        &self,
        request: Request<ViewSnapshotRequest>,
    ) -> Result<Response<ViewSnapshotResponse>, Status> {
        let r = request.into_inner();
        let key = r.key.clone();
        let mounts = self
            .run("View", key, move |s| {
                s.view(&r.key, opt(r.parent).as_deref(), labels(r.labels))
            })
            .await?;
        Ok(Response::new(ViewSnapshotResponse { mounts }))
    }

    async fn mounts(
        &self,
        request: Request<MountsRequest>,
    ) -> Result<Response<MountsResponse>, Status> {
        let r = request.into_inner();
        let key = r.key.clone();
        let mounts = self.run("Mounts", key, move |s| s.mounts(&r.key)).await?;
        Ok(Response::new(MountsResponse { mounts }))
    }

    async fn commit(
        &self,
        request: Request<CommitSnapshotRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        let key = r.key.clone();
        self.run("Commit", key, move |s| {
            s.commit(&r.name, &r.key, labels(r.labels), opt(r.parent).as_deref())
        })
        .await?;
        Ok(Response::new(()))
    }

    async fn remove(
        &self,
        request: Request<RemoveSnapshotRequest>,
    ) -> Result<Response<()>, Status> {
        let r = request.into_inner();
        let key = r.key.clone();
        self.run("Remove", key, move |s| s.remove(&r.key)).await?;
        Ok(Response::new(()))
    }

    async fn stat(
        &self,
        request: Request<StatSnapshotRequest>,
    ) -> Result<Response<StatSnapshotResponse>, Status> {
        let r = request.into_inner();
        let key = r.key.clone();
        let rec = self
            .run("Stat", key.clone(), move |s| s.stat(&r.key))
            .await?;
        Ok(Response::new(StatSnapshotResponse {
            info: Some(info(key, rec)),
        }))
    }

    async fn update(
        &self,
        request: Request<UpdateSnapshotRequest>,
    ) -> Result<Response<UpdateSnapshotResponse>, Status> {
        let r = request.into_inner();
        let Some(i) = r.info else {
            return Err(Error::invalid("update", "no info given").to_status());
        };
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let name = i.name.clone();
        let rec = self
            .run("Update", name.clone(), move |s| {
                s.update(&i.name, labels(i.labels), &paths)
            })
            .await?;
        Ok(Response::new(UpdateSnapshotResponse {
            info: Some(info(name, rec)),
        }))
    }

    type ListStream = ReceiverStream<Result<ListSnapshotsResponse, Status>>;

    async fn list(
        &self,
        request: Request<ListSnapshotsRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let r = request.into_inner();
        let filter = Filter::parse(&r.filters).map_err(|e| e.to_status())?;
        let all = self
            .run("List", r.filters.join(" | "), move |s| s.list(&filter))
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(LIST_BATCH);
            for (k, rec) in all {
                batch.push(info(k, rec));
                if batch.len() == LIST_BATCH {
                    let info = std::mem::take(&mut batch);
                    if tx.send(Ok(ListSnapshotsResponse { info })).await.is_err() {
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(Ok(ListSnapshotsResponse { info: batch })).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn usage(
        &self,
        request: Request<UsageRequest>,
    ) -> Result<Response<UsageResponse>, Status> {
        let r = request.into_inner();
        let key = r.key.clone();
        let u = self.run("Usage", key, move |s| s.usage(&r.key)).await?;
        Ok(Response::new(UsageResponse {
            size: to_i64(u.size),
            inodes: to_i64(u.inodes),
        }))
    }

    async fn cleanup(&self, _request: Request<CleanupRequest>) -> Result<Response<()>, Status> {
        self.run("Cleanup", String::new(), |s| s.cleanup()).await?;
        Ok(Response::new(()))
    }
}
