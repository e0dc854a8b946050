//! The one way every command (`serve`, `gateway`, `view`) serves HTTP:
//! the browser-side hardening headers on every response, and timeouts so a
//! connection that never finishes its request cannot be held open.
//!
//! - Headers not finished within `header_timeout` close the connection;
//!   hyper's timer also runs while a kept-alive connection waits for its
//!   next request, so it is the idle timeout too.
//! - A request body must arrive whole within `body_timeout` of the
//!   request's start (a deadline, not a gap between bytes: one byte every
//!   few seconds does not keep it open); past it the body fails and the
//!   handler answers (ingestion: `400 incomplete_body`).
//! - At most [`MAX_CONNECTIONS`] connections are served at once (more
//!   wait in the kernel's backlog), and a request's headers may not
//!   exceed 64 KiB.
//! - Every client's address reaches the handlers as axum's
//!   `ConnectInfo<SocketAddr>`.

use anyhow::Context;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tower::ServiceExt;
use tower_http::set_header::SetResponseHeaderLayer;

/// What every page and answer may do in a browser: scripts, styles and
/// images from minilog itself only, no framing (clickjacking), no
/// `<base>` or plugins, forms posting only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 4096;

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub header: Duration,
    pub body: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header: Duration::from_secs(10),
            body: Duration::from_secs(30),
        }
    }
}

/// The router with the hardening headers (set where a handler did not set
/// its own) and the body timeout.
pub fn harden(router: Router, timeouts: Timeouts) -> Router {
    let headers = [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
    ];
    let body = timeouts.body;
    // A panic in a handler (a damaged page inside redb, a bug) answers
    // 500 and is logged, instead of dropping the connection.
    let router = router.layer(tower_http::catch_panic::CatchPanicLayer::custom(
        |_: Box<dyn std::any::Any + Send>| {
            tracing::error!("a request handler panicked; answered 500");
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal error\n",
            )
                .into_response()
        },
    ));
    let mut router = router.layer(axum::middleware::map_request(
        move |req: axum::extract::Request| async move {
            req.map(|b| axum::body::Body::new(DeadlineBody::new(b, body)))
        },
    ));
    for (name, value) in headers {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    router
}

/// Serves `router` on `listener` until `shutdown`, then lets requests in
/// flight finish (for up to 30 s).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let router = harden(router, timeouts);
    let graceful = GracefulShutdown::new();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: say so, go on.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            },
        );
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(timeouts.header)
            .max_buf_size(64 * 1024)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!("requests still in flight after 30 s; stopping anyway");
        }
    }
    Ok(())
}

/// Binds `addr` with a message that says what failed.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))
}

pin_project_lite::pin_project! {
    /// A request body that fails once its deadline has passed.
    struct DeadlineBody {
        #[pin]
        inner: axum::body::Body,
        #[pin]
        deadline: tokio::time::Sleep,
    }
}

impl DeadlineBody {
    fn new(inner: axum::body::Body, within: Duration) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: tokio::time::sleep(within),
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if this.deadline.poll(cx).is_ready() {
            return std::task::Poll::Ready(Some(Err(axum::Error::new(
                "the request body did not arrive within the body timeout",
            ))));
        }
        this.inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
