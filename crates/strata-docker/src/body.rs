//! Bridges between async HTTP bodies and the store's blocking `Read`/`Write`: a bounded channel
//! of chunks in each direction, so a layer streams through with at most a few chunks in memory.
//! This module never parses tar or JSON and never calls the store.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::mpsc;

/// Chunks in flight per direction. With [`CHUNK`]-sized writes this bounds a stream's memory
/// to about 1 MiB.
pub(crate) const DEPTH: usize = 4;

/// Size of the chunks [`ChannelWriter`] sends.
pub(crate) const CHUNK: usize = 256 * 1024;

/// The blocking side of a request body: reads the chunks an async task forwards.
#[derive(Debug)]
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl ChannelReader {
    pub(crate) fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> ChannelReader {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// The blocking side of a response body: buffers writes into [`CHUNK`]s and sends them to the
/// response stream. Dropping it ends the stream.
#[derive(Debug)]
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
    sent_any: bool,
}

impl ChannelWriter {
    pub(crate) fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
            sent_any: false,
        }
    }

    /// Whether a chunk has left, i.e. the response status is already committed.
    pub(crate) fn sent_any(&self) -> bool {
        self.sent_any
    }

    /// Aborts the stream: the client sees a broken body instead of a short, valid-looking one.
    pub(crate) fn abort(self, message: String) {
        // A closed receiver means the client is gone already; nothing is left to tell.
        let _ = self.tx.blocking_send(Err(io::Error::other(message)));
    }

    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        self.sent_any = true;
        Ok(())
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send_buffer()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}

/// A response body fed by a [`ChannelWriter`]; an `Err` chunk aborts the response.
#[derive(Debug)]
pub(crate) struct ChannelBody {
    first: Option<Bytes>,
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl ChannelBody {
    /// A body that starts with `first` (already received) and continues with `rx`.
    pub(crate) fn new(first: Bytes, rx: mpsc::Receiver<io::Result<Bytes>>) -> ChannelBody {
        ChannelBody {
            first: Some(first),
            rx,
        }
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|r| r.map(Frame::data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_reader_reads_chunks_across_boundaries_then_eof() {
        let (tx, rx) = mpsc::channel(DEPTH);
        tx.try_send(Ok(Bytes::from_static(b"hello "))).unwrap();
        tx.try_send(Ok(Bytes::from_static(b"world"))).unwrap();
        drop(tx);
        let mut r = ChannelReader::new(rx);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello world");
    }

    #[test]
    fn channel_reader_error_chunk_is_a_read_error() {
        let (tx, rx) = mpsc::channel(DEPTH);
        tx.try_send(Ok(Bytes::from_static(b"ab"))).unwrap();
        tx.try_send(Err(io::Error::other("body broke"))).unwrap();
        let mut r = ChannelReader::new(rx);
        let mut v = Vec::new();
        let err = r.read_to_end(&mut v).unwrap_err();
        assert_eq!(err.to_string(), "body broke");
        assert_eq!(v, b"ab");
    }

    #[test]
    fn channel_writer_sends_full_chunks_and_the_rest_on_flush() {
        let (tx, mut rx) = mpsc::channel(DEPTH);
        let mut w = ChannelWriter::new(tx);
        let data = vec![7u8; CHUNK + 10];
        w.write_all(&data).unwrap();
        assert!(w.sent_any());
        w.flush().unwrap();
        drop(w);
        let a = rx.blocking_recv().unwrap().unwrap();
        let b = rx.blocking_recv().unwrap().unwrap();
        assert_eq!(a.len(), CHUNK);
        assert_eq!(b.len(), 10);
        assert!(rx.blocking_recv().is_none());
    }

    #[test]
    fn channel_writer_closed_receiver_is_broken_pipe() {
        let (tx, rx) = mpsc::channel(DEPTH);
        drop(rx);
        let mut w = ChannelWriter::new(tx);
        w.write_all(b"x").unwrap();
        assert_eq!(w.flush().unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
}
