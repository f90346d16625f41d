//! The accept loop: HTTP/1.1 on a TCP listener with a header-read timeout (which also
//! ends idle keep-alive connections), a cap on open connections, and the client's
//! address handed to handlers without ever being logged. Cached export files are written
//! with `sendfile` ([`crate::zero_copy`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::Service;

use crate::zero_copy::{FileMemory, ZeroCopyStream};

/// Where a request came from, as handlers see it: the peer, or the address a trusted
/// proxy forwarded. Never logged, never stored; only its daily keyed hash is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// How one listener treats its connections.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Most connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, counted from the end of the
    /// previous answer (so it also ends idle connections).
    pub header_timeout: Duration,
    /// The proxy whose `X-Forwarded-For` is believed.
    pub trusted_proxy: Option<IpAddr>,
}

/// The client's address: the last `X-Forwarded-For` entry when the peer is the trusted
/// proxy (the entry that proxy added), else the peer.
pub fn client_addr(peer: IpAddr, trusted_proxy: Option<IpAddr>, headers: &HeaderMap) -> IpAddr {
    if trusted_proxy.is_none_or(|proxy| proxy.to_canonical() != peer.to_canonical()) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}

/// Serves `router` on `listener` until `stop` turns true, then lets open requests
/// finish. Response bodies held in `memory` are sent from their files.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    memory: Arc<FileMemory>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    loop {
        let stopped = async {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors or similar: wait instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Answers are written whole: without this, Nagle's algorithm holds each answer's
        // last partial segment back until the client's (delayed) ACK, up to 40 ms. (Headers
        // before a file's body are still held back for it: zero_copy sends them MSG_MORE.)
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!("kith_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let client = client_addr(peer.ip(), limits.trusted_proxy, request.headers());
            request.extensions_mut().insert(ClientAddr(client));
            router.clone().call(request)
        });
        let connection = builder.serve_connection(
            TokioIo::new(ZeroCopyStream::new(stream, memory.clone())),
            service,
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Errors here are clients that went away or timed out: nothing to report.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn forwarded_addresses_are_believed_only_from_the_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 198.51.100.4"),
        );
        assert_eq!(client_addr(peer, None, &headers), peer);
        assert_eq!(client_addr(peer, Some(proxy), &headers), peer);
        assert_eq!(
            client_addr(proxy, Some(proxy), &headers),
            "198.51.100.4".parse::<IpAddr>().unwrap(),
            "the entry the proxy added, not one the client wrote"
        );
        headers.insert("x-forwarded-for", HeaderValue::from_static("garbage"));
        assert_eq!(client_addr(proxy, Some(proxy), &headers), proxy);
    }
}
