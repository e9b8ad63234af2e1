//! The HTTP server of the probes and metrics (HTTP/1.1, hyper):
//!
//! - `GET /metrics`: every metric, Prometheus text format 0.0.4;
//! - `GET /livez`: 200 while the process serves requests;
//! - `GET /readyz`: 200 once every cache has synced and, with leader election, the
//!   Lease has been read (this replica leads or is a warm standby); 503 otherwise, with
//!   the reason in the body.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::Runtime;
use super::metrics::CONTENT_TYPE as METRICS_CONTENT_TYPE;

/// Binds `addr`; failing here stops the operator before it does anything else.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves requests on `listener` until the process ends.
pub async fn serve(listener: TcpListener, runtime: Runtime) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                warn!(%error, "cannot accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let runtime = runtime.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = respond(&runtime, request.method(), request.uri().path());
                    async move { Ok::<_, Infallible>(response) }
                });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
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
}
