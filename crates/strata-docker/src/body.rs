//! Bridges between async HTTP bodies and the store's blocking `Read`/`Write`: a bounded channel
//! of chunks in each direction, so a layer streams through with at most a few chunks in memory.
//! A stream ends cleanly only with an explicit [`Chunk::End`]: a sender that goes away without
//! it (a client that disconnected or stalled, a task that died) is an error at the other end,
//! never a short stream that looks complete. This module never parses tar or JSON and never
//! calls the store.

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

/// One message of a streamed body.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// The next bytes.
    Data(Bytes),
    /// The stream is complete.
    End,
    /// The stream broke; the receiver fails with this error.
    Abort(io::Error),
}

/// The blocking side of a request body: reads the chunks an async task forwards. End of file
/// only after [`Chunk::End`]; a closed channel before it is an `UnexpectedEof` error.
#[derive(Debug)]
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<Chunk>,
    current: Bytes,
    ended: bool,
}

impl ChannelReader {
    pub(crate) fn new(rx: mpsc::Receiver<Chunk>) -> ChannelReader {
        ChannelReader {
            rx,
            current: Bytes::new(),
            ended: false,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Data(chunk)) => self.current = chunk,
                Some(Chunk::End) => self.ended = true,
                Some(Chunk::Abort(e)) => return Err(e),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the request body stopped before its end (the request was abandoned)",
                    ))
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// The blocking side of a response body: buffers writes into [`CHUNK`]s and sends them to the
/// response stream. [`finish`](Self::finish) ends the stream; dropping the writer without it
/// breaks the stream.
#[derive(Debug)]
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
    sent_any: bool,
}

impl ChannelWriter {
    pub(crate) fn new(tx: mpsc::Sender<Chunk>) -> ChannelWriter {
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

    /// Sends what is buffered and ends the stream cleanly.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.send_buffer()?;
        self.tx
            .blocking_send(Chunk::End)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }

    /// Aborts the stream: the client sees a broken body instead of a short, valid-looking one.
    pub(crate) fn abort(self, message: String) {
        // A closed receiver means the client is gone already; nothing is left to tell.
        let _ = self
            .tx
            .blocking_send(Chunk::Abort(io::Error::other(message)));
    }

    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Chunk::Data(chunk))
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

/// A response body fed by a [`ChannelWriter`]; [`Chunk::Abort`] or a writer gone without
/// [`Chunk::End`] breaks the response.
#[derive(Debug)]
pub(crate) struct ChannelBody {
    first: Option<Bytes>,
    rx: mpsc::Receiver<Chunk>,
    ended: bool,
}

impl ChannelBody {
    /// A body that starts with `first` (already received) and continues with `rx`.
    pub(crate) fn new(first: Bytes, rx: mpsc::Receiver<Chunk>) -> ChannelBody {
        ChannelBody {
            first: Some(first),
            rx,
            ended: false,
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
        if self.ended {
            return Poll::Ready(None);
        }
        self.rx.poll_recv(cx).map(|chunk| match chunk {
            Some(Chunk::Data(data)) => Some(Ok(Frame::data(data))),
            Some(Chunk::End) => {
                self.ended = true;
                None
            }
            Some(Chunk::Abort(e)) => Some(Err(e)),
            None => Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stream stopped before its end",
            ))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_reader_reads_chunks_across_boundaries_then_eof() {
        let (tx, rx) = mpsc::channel(DEPTH);
        tx.try_send(Chunk::Data(Bytes::from_static(b"hello ")))
            .unwrap();
        tx.try_send(Chunk::Data(Bytes::from_static(b"world")))
            .unwrap();
        tx.try_send(Chunk::End).unwrap();
        drop(tx);
        let mut r = ChannelReader::new(rx);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello world");
    }

    #[test]
    fn channel_reader_error_chunk_is_a_read_error() {
        let (tx, rx) = mpsc::channel(DEPTH);
        tx.try_send(Chunk::Data(Bytes::from_static(b"ab"))).unwrap();
        tx.try_send(Chunk::Abort(io::Error::other("body broke")))
            .unwrap();
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
        w.finish().unwrap();
        let data = |c| match c {
            Some(Chunk::Data(d)) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(data(rx.blocking_recv()).len(), CHUNK);
        assert_eq!(data(rx.blocking_recv()).len(), 10);
        assert!(matches!(rx.blocking_recv(), Some(Chunk::End)));
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

    #[test]
    fn channel_reader_sender_gone_without_end_is_an_error_not_eof() {
        let (tx, rx) = mpsc::channel(DEPTH);
        tx.try_send(Chunk::Data(Bytes::from_static(b"partial")))
            .unwrap();
        drop(tx);
        let mut r = ChannelReader::new(rx);
        let mut v = Vec::new();
        let err = r.read_to_end(&mut v).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(v, b"partial");
    }

    #[tokio::test]
    async fn channel_body_writer_dropped_without_finish_breaks_the_body() {
        use http_body_util::BodyExt;
        let (tx, rx) = mpsc::channel(DEPTH);
        tx.try_send(Chunk::Data(Bytes::from_static(b"more")))
            .unwrap();
        drop(tx);
        let body = ChannelBody::new(Bytes::from_static(b"first"), rx);
        assert!(body.collect().await.is_err());
    }
}
