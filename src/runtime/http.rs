//! The HTTP server of the probes and metrics (HTTP/1.1, hyper):
//!
//! - `GET /metrics`: every metric, Prometheus text format 0.0.4;
//! - `GET /livez`: 200 while the process serves requests;
//! - `GET /readyz`: 200 once every cache has synced and, with leader election, the
//!   Lease has been read (this replica leads or is a warm standby); 503 otherwise, with
//!   the reason in the body.
//!
//! It also owns the server's [`Limits`]: a connection that has not sent a complete
//! request head within the header-read timeout is closed (an idle keep-alive connection
//! too), and at most `max_connections` are served at once; more wait in the listen
//! backlog until one closes. A slow or stalled client therefore holds one slot for a few
//! seconds at most, and cannot keep the probes or a scrape waiting.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::Runtime;
use super::metrics::CONTENT_TYPE as METRICS_CONTENT_TYPE;

/// Binds `addr`; failing here stops the operator before it does anything else.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// How much of the server one client may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest wait for a request's complete head (request line and headers), from the
    /// start of the connection or the end of the previous response.
    pub header_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Limits {
    /// 5 s to send the headers (a probe or a scrape sends them at once); 64 connections
    /// (kubelet probes and a few scrapers need a handful).
    pub const DEFAULT: Limits = Limits {
        header_read_timeout: Duration::from_secs(5),
        max_connections: 64,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Serves requests on `listener` with the default [`Limits`] until the process ends.
pub async fn serve(listener: TcpListener, runtime: Runtime) {
    serve_with(listener, runtime, Limits::DEFAULT).await
}

/// Serves requests on `listener` within `limits` until the process ends.
pub async fn serve_with(listener: TcpListener, runtime: Runtime, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // A slot first: past the limit, connections wait in the listen backlog.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return; // the semaphore is never closed
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let runtime = runtime.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = respond(&runtime, request.method(), request.uri().path());
                    async move { Ok::<_, Infallible>(response) }
                });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%error, "HTTP connection ended with an error");
            }
        });
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

const PLAIN: &str = "text/plain; charset=utf-8";

fn respond(runtime: &Runtime, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, PLAIN, "GET only\n".into());
    }
    match path {
        "/metrics" => match runtime.metrics.encode() {
            Ok(body) => text(StatusCode::OK, METRICS_CONTENT_TYPE, body),
            Err(_) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                PLAIN,
                "cannot encode the metrics\n".into(),
            ),
        },
        "/livez" => text(StatusCode::OK, PLAIN, "ok\n".into()),
        "/readyz" => match runtime.ready() {
            Ok(state) => text(StatusCode::OK, PLAIN, format!("{state}\n")),
            Err(missing) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN,
                format!("not ready: {missing}\n"),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: try /metrics, /livez or /readyz\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let runtime = Runtime::standalone();
        let get = |path| respond(&runtime, &Method::GET, path).status();
        assert_eq!(get("/livez"), StatusCode::OK);
        assert_eq!(get("/metrics"), StatusCode::OK);
        // No cache declared: not ready.
        assert_eq!(get("/readyz"), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get("/nope"), StatusCode::NOT_FOUND);
        assert_eq!(
            respond(&runtime, &Method::POST, "/livez").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        let metrics = respond(&runtime, &Method::GET, "/metrics");
        assert_eq!(
            metrics.headers().get(CONTENT_TYPE).unwrap(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::time::{Instant, timeout};

    const GET_LIVEZ: &[u8] = b"GET /livez HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";

    /// A client that starts a request and never finishes its headers.
    async fn stalled_client(addr: SocketAddr) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nHost: test\r\n")
            .await
            .unwrap();
        stream
    }

    /// Sends GET /livez and reads the whole response.
    async fn get_livez(mut stream: TcpStream) -> String {
        stream.write_all(GET_LIVEZ).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).into_owned()
    }

    /// Resolves when the server has closed `stream` (EOF or reset).
    async fn closed(mut stream: TcpStream) {
        let mut buf = [0u8; 256];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                return;
            }
        }
    }

    #[tokio::test]
    async fn a_stalled_client_is_dropped_and_does_not_block_others() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            header_read_timeout: Duration::from_millis(500),
            max_connections: 2,
        };
        let server = tokio::spawn(serve_with(listener, Runtime::standalone(), limits));

        // Below the connection limit, a stalled client does not delay another one.
        let first = stalled_client(addr).await;
        let started = Instant::now();
        let answer = timeout(
            Duration::from_millis(400),
            get_livez(TcpStream::connect(addr).await.unwrap()),
        )
        .await
        .expect("answered while the stalled client waits");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(started.elapsed() < limits.header_read_timeout);

        // At the limit, a third connection waits for a slot...
        let second = stalled_client(addr).await;
        let mut waiting = tokio::spawn(get_livez(TcpStream::connect(addr).await.unwrap()));
        assert!(
            timeout(Duration::from_millis(150), &mut waiting)
                .await
                .is_err(),
            "two stalled clients hold both slots"
        );
        // ...until the header-read timeout drops the stalled ones.
        timeout(Duration::from_secs(5), closed(first))
            .await
            .expect("the first stalled client is dropped");
        let answer = timeout(Duration::from_secs(5), waiting)
            .await
            .expect("served once a slot is free")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        timeout(Duration::from_secs(5), closed(second))
            .await
            .expect("the second stalled client is dropped");
        server.abort();
    }
}
