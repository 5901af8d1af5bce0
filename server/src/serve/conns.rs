//! Connections per port. The HTTP port holds at most `http_max_connections` at once: the next one is read and
//! answered `503 Service Unavailable` (through hyper, with `Connection: close`) instead of being left to hang in
//! the kernel's backlog, and its socket closed. Each held connection is counted in the `connections` metric.
//! The PostgreSQL port's limit (`pg_max_connections`) refuses as PostgreSQL does (FATAL 53300), and a connection
//! that runs no statement for `pg_idle_timeout_ms` is closed as PostgreSQL's `idle_session_timeout` closes it
//! (FATAL 57P05); both messages are encoded by pgwire. A request answered before its body was read to the end
//! (a 413, an early error) gets `Connection: close`, since hyper then closes that connection.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::middleware::Next;
use bytes::BytesMut;
use http_body::{Frame, SizeHint};
use pgwire::error::ErrorInfo;
use pgwire::messages::response::{ErrorResponse, SslResponse};
use pgwire::messages::startup::{GssEncRequest, SslRequest};
use pgwire::messages::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::metrics::ConnectionGuard;
use super::Server;

/// How long a refused client has to send its request before the socket is simply closed.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A listener that holds at most a fixed number of connections; past it, connections are refused with a 503.
pub struct LimitedListener {
    listener: TcpListener,
    open: Arc<Semaphore>,
    server: Arc<Server>,
}

/// An accepted connection: its socket, the slot it holds and its place in the metrics, released on close.
pub struct Held<S> {
    inner: S,
    _slot: OwnedSemaphorePermit,
    _guard: ConnectionGuard,
}

impl LimitedListener {
    pub fn new(listener: TcpListener, server: Arc<Server>) -> Self {
        let open = Arc::new(Semaphore::new(server.config.http_max_connections));
        LimitedListener {
            listener,
            open,
            server,
        }
    }

    /// The next connection that gets a slot; those past the limit are refused on their own task meanwhile.
    /// With `tls`, a refused client still gets its 503 over TLS.
    pub async fn next(
        &self,
        tls: Option<&tokio_rustls::TlsAcceptor>,
    ) -> (Held<TcpStream>, std::net::SocketAddr) {
        loop {
            let (socket, peer) = match self.listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!("http accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match self.open.clone().try_acquire_owned() {
                Ok(slot) => {
                    let held = Held {
                        inner: socket,
                        _slot: slot,
                        _guard: self.server.metrics.connection("http"),
                    };
                    return (held, peer);
                }
                Err(_) => {
                    tracing::debug!(%peer, "http connection refused: http_max_connections reached");
                    let tls = tls.cloned();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(REFUSE_TIMEOUT, refuse(socket, tls)).await;
                    });
                }
            }
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = Held<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.next(None).await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// Reads one request from a connection past the limit and answers it with a 503 that says why.
async fn refuse(socket: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
    match tls {
        Some(acceptor) => {
            if let Ok(stream) = acceptor.accept(socket).await {
                refuse_io(stream).await;
            }
        }
        None => refuse_io(socket).await,
    }
}

async fn refuse_io<S>(io: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(|_req| async {
        let body = r#"{"error":"too many connections (http_max_connections); retry later"}"#;
        Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONNECTION, "close")
            .header(header::RETRY_AFTER, "1")
            .body(Body::from(body))
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
}

impl<S: AsyncRead + Unpin> AsyncRead for Held<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Held<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A PostgreSQL connection's clock for the idle timeout: when its last statement finished, and how many run now.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    /// Milliseconds from `opened` to the end of the last statement (or to the connection's start).
    last_ms: AtomicU64,
    running: AtomicUsize,
}

/// A statement running on a connection; its end restarts the connection's idle clock.
pub struct Running<'a>(&'a Activity);

impl Activity {
    pub fn new() -> Self {
        Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            running: AtomicUsize::new(0),
        }
    }

    /// Marks a statement as running until the returned guard drops.
    pub fn begin(&self) -> Running<'_> {
        self.running.fetch_add(1, Ordering::SeqCst);
        Running(self)
    }

    /// How long the connection has run nothing; `None` while a statement runs.
    fn idle_for(&self) -> Option<Duration> {
        if self.running.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::SeqCst));
        Some(self.opened.elapsed().saturating_sub(last))
    }

    /// Returns once the connection has been idle for `limit`.
    async fn idle(&self, limit: Duration) {
        loop {
            let wait = match self.idle_for() {
                Some(idle) if idle >= limit => return,
                Some(idle) => limit - idle,
                // A statement runs: look again later (a statement is never cut by the idle timeout).
                None => limit.min(Duration::from_secs(1)),
            };
            tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let now = self.0.opened.elapsed().as_millis() as u64;
        self.0.last_ms.fetch_max(now, Ordering::SeqCst);
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves one PostgreSQL connection through `serve` (pgwire's connection loop) until it ends or stays idle for
/// `idle` (zero: no limit). A plaintext connection is then told why (FATAL 57P05) before it is closed; over TLS
/// the socket is only closed, since the message would have to go through the TLS session pgwire holds.
pub async fn serve_pg<F, Fut>(
    socket: TcpStream,
    peer: std::net::SocketAddr,
    plain: bool,
    activity: Arc<Activity>,
    idle: Duration,
    serve: F,
) where
    F: FnOnce(TcpStream) -> Fut,
    Fut: std::future::Future<Output = io::Result<()>>,
{
    if idle.is_zero() {
        if let Err(e) = serve(socket).await {
            tracing::debug!(%peer, "pg connection ended: {e}");
        }
        return;
    }
    // A second handle on the socket, to write the FATAL once pgwire's loop is dropped.
    let (socket, notice) = match duplicate(socket, plain) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(%peer, "pg connection: {e}");
            return;
        }
    };
    tokio::select! {
        r = serve(socket) => {
            if let Err(e) = r {
                tracing::debug!(%peer, "pg connection ended: {e}");
            }
        }
        _ = activity.idle(idle) => {
            tracing::info!(%peer, idle_ms = idle.as_millis() as u64, "pg connection closed: idle-session timeout");
            if let Some(mut notice) = notice {
                let message = fatal("57P05", "terminating connection due to idle-session timeout");
                let _ = tokio::time::timeout(REFUSE_TIMEOUT, notice.write_all(&message)).await;
                let _ = notice.shutdown().await;
            }
        }
    }
}

/// The socket back, and (when `plain`) a second handle on the same connection.
fn duplicate(socket: TcpStream, plain: bool) -> io::Result<(TcpStream, Option<TcpStream>)> {
    if !plain {
        return Ok((socket, None));
    }
    let std_socket = socket.into_std()?;
    let copy = std_socket.try_clone()?;
    Ok((
        TcpStream::from_std(std_socket)?,
        Some(TcpStream::from_std(copy)?),
    ))
}

/// A FATAL ErrorResponse, as pgwire encodes it.
fn fatal(code: &str, message: &str) -> Vec<u8> {
    let info = ErrorInfo::new("FATAL".into(), code.into(), message.into());
    let mut buf = BytesMut::new();
    // Encoding into memory cannot fail for a message this small; an empty buffer just closes the socket.
    let _ = ErrorResponse::from(info).encode(&mut buf);
    buf.to_vec()
}

/// Past `pg_max_connections`: reads the client's first message (a startup or an SSLRequest), answers with
/// PostgreSQL's own refusal (FATAL, SQLSTATE 53300) and closes.
pub async fn refuse_pg(mut socket: TcpStream) {
    let wait = Duration::from_secs(2);
    let mut first = [0u8; 512];
    let n = match tokio::time::timeout(wait, socket.read(&mut first)).await {
        Ok(Ok(n)) => n,
        _ => 0,
    };
    // An SSLRequest (or GSSENCRequest) first: decline it, so the client sends its startup and reads the error as
    // PostgreSQL's own "too many clients".
    let first = &first[..n];
    if n == SslRequest::BODY_SIZE
        && (SslRequest::is_ssl_request_packet(first)
            || GssEncRequest::is_gss_enc_request_packet(first))
    {
        let mut no = BytesMut::new();
        if SslResponse::Refuse.encode(&mut no).is_err() || socket.write_all(&no).await.is_err() {
            return;
        }
        let mut startup = [0u8; 512];
        let _ = tokio::time::timeout(wait, socket.read(&mut startup)).await;
    }
    let message = fatal(
        "53300",
        "sorry, too many clients already (pg_max_connections)",
    );
    let _ = socket.write_all(&message).await;
    let _ = socket.shutdown().await;
}

/// Middleware: when the handler answered without reading the request's body to its end, hyper closes the
/// connection after the response (the rest of the body is still on it); saying `Connection: close` lets the
/// client know, instead of sending its next request into a socket that is closing.
pub async fn close_after_unread_body(req: Request, next: Next) -> Response<Body> {
    let read = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let tracked = Tracked {
        inner: body,
        read: read.clone(),
    };
    if http_body::Body::is_end_stream(&tracked) {
        read.store(true, Ordering::SeqCst);
    }
    let mut response = next
        .run(Request::from_parts(parts, Body::new(tracked)))
        .await;
    if !read.load(Ordering::SeqCst) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that notes when it has been read to its end.
struct Tracked {
    inner: Body,
    read: Arc<AtomicBool>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::SeqCst);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
