//! The connection cap and the open-file limit it needs (ADR 0013).
//!
//! Every accepted TCP connection takes a permit of `[limits]
//! max_connections` for its whole life; the permit is part of the stream, so
//! it is returned exactly when the connection is closed, however that
//! happens. When no permit is left the connection is refused at once, in
//! the accept path, instead of being served late:
//!
//! - over plain HTTP it is answered with a canned 503 `overloaded` (the
//!   contract's JSON body, `Retry-After`), its write side is shut, and what
//!   the client sent is read and discarded for at most [`REFUSAL_LINGER`] so
//!   that closing does not turn into a reset that loses the answer. At most
//!   [`REFUSAL_SLOTS`] refusals are answered at a time; beyond that a
//!   connection is closed without a word;
//! - over TLS it is closed before the handshake (an answer would need one).
//!
//! Either way nothing queues: the work a refused connection costs is one
//! accept and one write, and the memory of a connection (its buffers, its
//! task) is never allocated, so the process's size stays bounded by the cap.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use signet_app::metrics::Metrics;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many refused connections may be answered at once.
pub const REFUSAL_SLOTS: u32 = 64;
/// How long a refused connection is kept to deliver its answer.
pub const REFUSAL_LINGER: Duration = Duration::from_secs(1);

const REFUSAL_BODY: &str =
    r#"{"error":"overloaded","message":"the server has too many open connections; try again in a moment"}"#;

/// An [`Accept`] that enforces the connection cap (see the module docs).
#[derive(Clone)]
pub struct ConnectionCap {
    permits: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
    /// Answer refused connections with an HTTP 503 (plain HTTP only).
    answer: bool,
    metrics: Arc<Metrics>,
}

impl ConnectionCap {
    pub fn new(max_connections: u32, answer: bool, metrics: Arc<Metrics>) -> Self {
        let n = |v: u32| usize::try_from(v.max(1)).unwrap_or(1);
        Self {
            permits: Arc::new(Semaphore::new(n(max_connections))),
            refusals: Arc::new(Semaphore::new(n(REFUSAL_SLOTS))),
            answer,
            metrics,
        }
    }
}

impl<S: Send + 'static> Accept<TcpStream, S> for ConnectionCap {
    type Stream = Capped<TcpStream>;
    type Service = S;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, S)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Box::pin(std::future::ready(Ok((
                Capped {
                    stream,
                    _permit: permit,
                },
                service,
            )))),
            Err(_) => {
                drop(service);
                self.metrics.shed("connection", "connections");
                let slot = if self.answer {
                    self.refusals.clone().try_acquire_owned().ok()
                } else {
                    None
                };
                Box::pin(async move {
                    if let Some(slot) = slot {
                        let _ = tokio::time::timeout(REFUSAL_LINGER, refuse(stream)).await;
                        drop(slot);
                    }
                    Err(io::Error::other("connection cap reached"))
                })
            }
        }
    }
}

/// Answers 503 `overloaded` and closes without a reset.
async fn refuse(mut stream: TcpStream) -> io::Result<()> {
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{REFUSAL_BODY}",
        signet_web::admission::OVERLOADED_RETRY_AFTER_SECS,
        REFUSAL_BODY.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await?;
    // Closing with unread input would send a reset, and a client may then
    // drop the answer it has not read yet: read until it closes.
    let mut sink = [0u8; 2048];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}

/// A connection and its place under the cap.
pub struct Capped<T> {
    stream: T,
    _permit: OwnedSemaphorePermit,
}

impl<T: AsyncRead + Unpin> AsyncRead for Capped<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Capped<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// File descriptors the process needs besides client connections and the
/// database: the listener, logs, SMTP and webhook sockets, key and policy
/// files, the runtime's own.
pub const FD_HEADROOM: u64 = 64;

/// Open files a SQLite store keeps: one writer and four readers, each with
/// the database, its WAL and its shared-memory index.
pub const SQLITE_FDS: u64 = 5 * 3;

/// The open-file limit needed for `max_connections` client connections and
/// `database_fds` database files or sockets.
pub fn fds_needed(max_connections: u32, database_fds: u64) -> u64 {
    u64::from(max_connections) + u64::from(REFUSAL_SLOTS) + database_fds + FD_HEADROOM
}

/// What to do about the open-file limit.
#[derive(Debug, PartialEq, Eq)]
pub enum FdPlan {
    /// The soft limit is enough.
    Enough,
    /// Raise the soft limit to this (at most the hard limit).
    Raise(u64),
    /// Even the hard limit is too low: raise to it (if above the soft one) and warn.
    Short { raise_to: Option<u64> },
}

pub fn plan_fds(soft: u64, hard: u64, needed: u64) -> FdPlan {
    if soft >= needed {
        FdPlan::Enough
    } else if hard >= needed {
        FdPlan::Raise(needed)
    } else {
        FdPlan::Short {
            raise_to: (hard > soft).then_some(hard),
        }
    }
}

/// The current open-file limit (soft), if it can be read.
pub fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::getrlimit(rlimit::Resource::NOFILE).ok().map(|(soft, _)| soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Checks RLIMIT_NOFILE against what the configuration needs at start-up,
/// raises the soft limit towards the hard one if that helps, and warns when
/// even that is not enough (then, past the limit, accepting a connection or
/// opening a file fails with "too many open files").
pub fn ensure_fd_limit(max_connections: u32, database_fds: u64) {
    #[cfg(unix)]
    {
        use rlimit::Resource;
        let needed = fds_needed(max_connections, database_fds);
        let Ok((soft, hard)) = rlimit::getrlimit(Resource::NOFILE) else {
            tracing::warn!("cannot read the open-file limit (RLIMIT_NOFILE); not checked");
            return;
        };
        let raise = |to: u64| match rlimit::setrlimit(Resource::NOFILE, to, hard) {
            Ok(()) => {
                tracing::info!(from = soft, to, "raised the open-file limit (RLIMIT_NOFILE soft limit)");
                to
            }
            Err(e) => {
                tracing::warn!(error = %e, from = soft, to, "could not raise the open-file limit");
                soft
            }
        };
        match plan_fds(soft, hard, needed) {
            FdPlan::Enough => {}
            FdPlan::Raise(to) => {
                let now = raise(to);
                if now < needed {
                    warn_short(now, hard, needed, max_connections);
                }
            }
            FdPlan::Short { raise_to } => {
                let now = raise_to.map_or(soft, raise);
                warn_short(now, hard, needed, max_connections);
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (max_connections, database_fds);
    }
}

#[cfg(unix)]
fn warn_short(limit: u64, hard: u64, needed: u64, max_connections: u32) {
    tracing::warn!(
        limit,
        hard_limit = hard,
        needed,
        max_connections,
        "the open-file limit (RLIMIT_NOFILE) is {limit} but limits.max_connections = {max_connections} plus \
         the database and files need about {needed}: past the limit new connections and files fail with \
         \"too many open files\". Raise it (systemd LimitNOFILE=, ulimit -n) or lower limits.max_connections"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_what_is_needed_up_to_the_hard_one() {
        let needed = fds_needed(1024, SQLITE_FDS);
        assert_eq!(needed, 1024 + 64 + 15 + 64);
        assert_eq!(plan_fds(65_536, 65_536, needed), FdPlan::Enough);
        assert_eq!(plan_fds(1024, 524_288, needed), FdPlan::Raise(needed));
        assert_eq!(plan_fds(256, 1024, needed), FdPlan::Short { raise_to: Some(1024) });
        assert_eq!(plan_fds(1024, 1024, needed), FdPlan::Short { raise_to: None });
    }
}
