//! Zero-copy answers: file contents held in memory are registered together with the open
//! file they were read from, and the connection that is asked to write those bytes has the
//! kernel send them from the file (`sendfile`) instead of copying them from memory into the
//! socket. Serving a 1 MB export zip then costs what it costs nginx.
//!
//! hyper writes a response body as the caller's own `Bytes`, untouched, so the connection
//! recognises registered memory by its address. The registry keeps each registered buffer
//! alive, so its address cannot be reused by another allocation while it is registered.
//! Bytes that are not registered (every other answer, and headers) are written as usual;
//! those just before registered bytes (an answer's headers) with `MSG_MORE`, so the kernel
//! sends them in one segment with the start of the body, as nginx's `tcp_nopush` does.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, ready};

use axum::body::Bytes;
use rustix::net::{SendAncillaryBuffer, SendFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Memory registered with the file it holds the content of, by start address.
#[derive(Debug, Default)]
pub struct FileMemory {
    regions: RwLock<BTreeMap<usize, Region>>,
}

#[derive(Debug)]
struct Region {
    /// Keeps the memory, and so its address, taken while registered.
    bytes: Bytes,
    file: Arc<File>,
}

impl FileMemory {
    /// Registers `bytes`, the content of `file`, until the registration is dropped; `None`
    /// for empty bytes (which have no address of their own). The file must not change
    /// while registered (export files are replaced by renaming, never rewritten in place).
    pub fn register(self: &Arc<Self>, bytes: &Bytes, file: File) -> Option<Registration> {
        if bytes.is_empty() {
            return None;
        }
        let start = bytes.as_ptr() as usize;
        let region = Region {
            bytes: bytes.clone(),
            file: Arc::new(file),
        };
        self.regions().insert(start, region);
        Some(Registration {
            start,
            memory: self.clone(),
        })
    }

    /// The registered file holding `slice`, and where in it `slice` starts.
    fn find(&self, slice: &[u8]) -> Option<(Arc<File>, u64)> {
        if slice.is_empty() {
            return None;
        }
        let start = slice.as_ptr() as usize;
        let regions = self.regions.read().unwrap_or_else(|e| e.into_inner());
        let (&base, region) = regions.range(..=start).next_back()?;
        let offset = start - base;
        (offset + slice.len() <= region.bytes.len()).then(|| (region.file.clone(), offset as u64))
    }

    fn regions(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<usize, Region>> {
        self.regions.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Bytes registered in a [`FileMemory`], for as long as this value lives.
#[derive(Debug)]
pub struct Registration {
    start: usize,
    memory: Arc<FileMemory>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.memory.regions().remove(&self.start);
    }
}

/// A TCP connection that writes registered memory with `sendfile`.
#[derive(Debug)]
pub struct ZeroCopyStream {
    tcp: TcpStream,
    memory: Arc<FileMemory>,
}

impl ZeroCopyStream {
    /// Wraps `tcp`, sending what `memory` holds from its files.
    pub fn new(tcp: TcpStream, memory: Arc<FileMemory>) -> Self {
        Self { tcp, memory }
    }

    /// Sends `len` bytes of `file` from `offset`.
    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, |tcp| {
            let mut offset = offset;
            rustix::fs::sendfile(tcp, file, Some(&mut offset), len)
        })
    }

    /// Sends `bufs` (the headers before a body sent from its file) with `MSG_MORE`: the
    /// kernel holds them back until the body's first bytes join them, so headers and body
    /// leave in one segment although `TCP_NODELAY` is on (without it, every answer's
    /// headers would cost a segment, and the client an extra wakeup, of their own).
    fn poll_send_more(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, |tcp| {
            let flags = SendFlags::MORE | SendFlags::NOSIGNAL;
            rustix::net::sendmsg(tcp, bufs, &mut SendAncillaryBuffer::default(), flags)
        })
    }

    /// Runs `send`, a non-blocking write to the socket, once the socket is writable, and
    /// again each time it would block.
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        send: impl Fn(&TcpStream) -> rustix::io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                send(&self.tcp).map_err(io::Error::from)
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                sent => return Poll::Ready(sent),
            }
        }
    }
}

impl AsyncRead for ZeroCopyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.memory.find(buf) {
            Some((file, offset)) => self.poll_sendfile(cx, &file, offset, buf.len()),
            None => Pin::new(&mut self.tcp).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Some(first) = bufs.iter().position(|buf| !buf.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        if let Some((file, offset)) = self.memory.find(&bufs[first]) {
            return self.poll_sendfile(cx, &file, offset, bufs[first].len());
        }
        // Everything up to the next registered buffer, in one write.
        match bufs[first + 1..]
            .iter()
            .position(|buf| self.memory.find(buf).is_some())
        {
            Some(n) => self.poll_send_more(cx, &bufs[first..first + 1 + n]),
            None => Pin::new(&mut self.tcp).poll_write_vectored(cx, &bufs[first..]),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A connected pair: the writing end wrapped, the reading end plain.
    async fn pair(memory: &Arc<FileMemory>) -> (ZeroCopyStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let stream = ZeroCopyStream::new(accepted.unwrap().0, memory.clone());
        (stream, client.unwrap())
    }

    fn file_holding(content: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(content).unwrap();
        file
    }

    #[tokio::test]
    async fn registered_memory_is_sent_from_its_file_and_other_bytes_from_memory() {
        let memory = Arc::new(FileMemory::default());
        // Memory and file differ here only so the test can tell which one was sent.
        let body = Bytes::from_static(b"in memory, 0123456789");
        let registered = memory.register(&body, file_holding(b"from file, abcdefghij"));
        let (mut stream, mut client) = pair(&memory).await;
        let bufs = [
            IoSlice::new(b"head:"),
            IoSlice::new(b""),
            IoSlice::new(&body[11..16]),
            IoSlice::new(b"|"),
            IoSlice::new(&body[..4]),
        ];
        let total: usize = bufs.iter().map(|buf| buf.len()).sum();
        let mut sent = 0;
        while sent < total {
            let mut skip = sent;
            let rest: Vec<IoSlice<'_>> = bufs
                .iter()
                .filter_map(|buf| {
                    let take = skip.min(buf.len());
                    skip -= take;
                    (take < buf.len()).then(|| IoSlice::new(&buf[take..]))
                })
                .collect();
            sent += stream.write_vectored(&rest).await.unwrap();
        }
        let unregistered = Bytes::copy_from_slice(&body[..4]);
        stream.write_all(&unregistered).await.unwrap();
        drop(registered);
        stream.write_all(&body[..4]).await.unwrap();
        drop(stream);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"head:abcde|fromin min m");
        assert!(memory.regions().is_empty(), "dropping unregisters");
    }

    #[test]
    fn only_slices_wholly_inside_a_region_are_found() {
        let memory = Arc::new(FileMemory::default());
        let bytes = Bytes::from(vec![7u8; 100]);
        let registered = memory.register(&bytes, file_holding(&[7; 100]));
        assert!(memory.register(&Bytes::new(), file_holding(b"")).is_none());
        assert_eq!(memory.find(&bytes[40..60]).map(|f| f.1), Some(40));
        assert_eq!(memory.find(&bytes[..]).map(|f| f.1), Some(0));
        assert!(memory.find(&bytes[0..0]).is_none());
        assert!(memory.find(&[7u8; 20]).is_none());
        drop(registered);
        assert!(memory.find(&bytes[40..60]).is_none());
    }
}
