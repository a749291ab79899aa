//! A connection whose writes may not stall: when the client stops reading a reply (a `Diff` tar
//! or any answer) for longer than the limit, the write fails with `TimedOut`, hyper closes the
//! connection, and whatever fed the reply sees the client gone and lets go of its layer. Reads
//! pass through untouched: waiting for the next request is the header timeout's business, and a
//! store call may legitimately take long while the client waits silently.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `io` with a limit on how long a write may stay pending.
#[derive(Debug)]
pub(crate) struct StallGuard<T> {
    io: T,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> StallGuard<T> {
    /// Wraps `io`; a write pending for `limit` fails.
    pub(crate) fn new(io: T, limit: Duration) -> StallGuard<T> {
        StallGuard {
            io,
            limit,
            stalled: None,
        }
    }

    /// Passes a ready result through (and forgets the stall), or checks the stall timer.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client has not read its reply for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn stall_guard_write_to_a_peer_that_never_reads_times_out() {
        let (a, _b) = tokio::net::UnixStream::pair().unwrap();
        let mut guarded = StallGuard::new(a, Duration::from_millis(100));
        let data = vec![0u8; 1 << 20];
        let err = loop {
            match guarded.write(&data).await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    }

    #[tokio::test]
    async fn stall_guard_reader_that_keeps_up_is_never_timed_out() {
        use tokio::io::AsyncReadExt;
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let reader = tokio::spawn(async move {
            let mut total = 0usize;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = b.read(&mut buf).await.unwrap();
                if n == 0 {
                    return total;
                }
                total += n;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let mut guarded = StallGuard::new(a, Duration::from_secs(30));
        guarded.write_all(&vec![1u8; 8 << 20]).await.unwrap();
        guarded.shutdown().await.unwrap();
        drop(guarded);
        assert_eq!(reader.await.unwrap(), 8 << 20);
    }
}
