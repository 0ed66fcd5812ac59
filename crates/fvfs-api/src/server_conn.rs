//! What bounds one connection of the listeners in `server.rs`: its activity record and
//! watchdog verdict ([`Activity`]), the request body that fails when it goes idle
//! ([`IdleBody`]), the response body that marks its request finished ([`Tracked`]), the IO
//! that notices a peer that stopped reading ([`Watched`]), and a rate limit for log lines
//! ([`LogEvery`]).
//!
//! Invariants: a request counts as in flight from the moment hyper hands it over until its
//! response body is dropped (a guard released on drop, so a cancelled request never leaks a
//! count); `idle_since` is written before the count drops, so whoever sees no request in
//! flight also sees when the last one ended. Times are milliseconds since the connection
//! was accepted, in atomics, so the watchdog reads them without a lock.

use axum::body::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The timeouts the watchdog of one connection applies.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bounds {
    pub header: Duration,
    pub idle: Duration,
    pub body: Duration,
}

/// What the watchdog should do now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Close the connection, for this reason.
    Close(&'static str),
    /// Look again at this time, or when [`Activity::changed`] fires (None: only then).
    Recheck(Option<Instant>),
}

/// One connection's requests and writes, as the watchdog sees them.
pub(super) struct Activity {
    accepted: Instant,
    inflight: AtomicUsize,
    requests: AtomicU64,
    /// When the last request in flight ended (valid while `inflight` is 0).
    idle_since: AtomicU64,
    /// 1 + when a write first found the peer's window full; 0 while writes go through.
    write_blocked: AtomicU64,
    changed: Notify,
}

impl Activity {
    pub fn new(accepted: Instant) -> Arc<Activity> {
        Arc::new(Activity {
            accepted,
            inflight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            write_blocked: AtomicU64::new(0),
            changed: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.accepted.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.accepted + Duration::from_millis(ms)
    }

    /// A request arrived; it is in flight until the guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.inflight.fetch_add(1, SeqCst);
        self.requests.fetch_add(1, SeqCst);
        InFlight(self.clone())
    }

    /// Resolves when a request ends or a write blocks (the watchdog's deadlines move).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    fn write_pending(&self) {
        let now = self.now_ms() + 1;
        if self
            .write_blocked
            .compare_exchange(0, now, SeqCst, SeqCst)
            .is_ok()
        {
            self.changed.notify_one();
        }
    }

    fn write_ready(&self) {
        if self.write_blocked.load(SeqCst) != 0 {
            self.write_blocked.store(0, SeqCst);
        }
    }

    /// Whether the connection has outlived one of `b`, and if not, when to look again.
    pub fn verdict(&self, b: &Bounds) -> Verdict {
        let ms = |d: Duration| d.as_millis() as u64;
        let now = self.now_ms();
        let mut next = u64::MAX;
        let blocked = self.write_blocked.load(SeqCst);
        if blocked != 0 {
            let t = blocked - 1 + ms(b.body);
            if now >= t {
                return Verdict::Close("the client read nothing of the response");
            }
            next = next.min(t);
        }
        if self.requests.load(SeqCst) == 0 {
            let t = ms(b.header);
            if now >= t {
                return Verdict::Close("no request head within the header timeout");
            }
            next = next.min(t);
        } else if self.inflight.load(SeqCst) == 0 {
            let t = self.idle_since.load(SeqCst) + ms(b.idle);
            if now >= t {
                return Verdict::Close("idle: no request within the idle timeout");
            }
            next = next.min(t);
        }
        Verdict::Recheck((next != u64::MAX).then(|| self.at(next)))
    }
}

/// A request in flight; dropping it ends the request for the watchdog.
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since.store(a.now_ms(), SeqCst);
        if a.inflight.fetch_sub(1, SeqCst) == 1 {
            a.changed.notify_one();
        }
    }
}

/// The error a request body yields after `timeout` without data while it is read.
#[derive(Debug, thiserror::Error)]
#[error("the request body sent no data for {} s", .0.as_secs())]
pub(super) struct BodyIdle(pub Duration);

/// A request body that fails once its reader has waited `timeout` for the next frame.
/// Time spent not reading (the handler busy elsewhere) does not count.
pub(super) struct IdleBody<B> {
    inner: B,
    timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<B> IdleBody<B> {
    pub fn new(inner: B, timeout: Duration) -> IdleBody<B> {
        IdleBody {
            inner,
            timeout,
            timer: None,
            armed: false,
        }
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(f) => {
                this.armed = false;
                Poll::Ready(f.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                if !this.armed {
                    let deadline = Instant::now() + this.timeout;
                    match &mut this.timer {
                        Some(t) => t.as_mut().reset(deadline),
                        None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                    this.armed = true;
                }
                let timer = this.timer.as_mut().expect("armed above");
                if timer.as_mut().poll(cx).is_ready() {
                    this.armed = false;
                    return Poll::Ready(Some(Err(BodyIdle(this.timeout).into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request in flight until hyper drops it.
pub(super) struct Tracked<B> {
    inner: B,
    _flight: InFlight,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, flight: InFlight) -> Tracked<B> {
        Tracked {
            inner,
            _flight: flight,
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's IO, noting when a write finds the peer's window full and when writes
/// go through again.
pub(super) struct Watched<I> {
    io: I,
    act: Arc<Activity>,
}

impl<I> Watched<I> {
    pub fn new(io: I, act: Arc<Activity>) -> Watched<I> {
        Watched { io, act }
    }

    fn note<T>(&self, p: Poll<T>) -> Poll<T> {
        match p {
            Poll::Pending => self.act.write_pending(),
            Poll::Ready(_) => self.act.write_ready(),
        }
        p
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let p = Pin::new(&mut self.io).poll_write(cx, buf);
        self.note(p)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let p = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(p)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let p = Pin::new(&mut self.io).poll_flush(cx);
        self.note(p)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Lets a log line through at most once per period; counts the ones held back.
pub(super) struct LogEvery {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogEvery {
    pub fn new(every: Duration) -> LogEvery {
        LogEvery {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// Some(lines held back since the last one) when a line may be logged now.
    pub fn hit(&self) -> Option<u64> {
        let now = Instant::now();
        let mut s = self.state.lock();
        match s.0 {
            Some(last) if now.duration_since(last) < self.every => {
                s.1 += 1;
                None
            }
            _ => {
                let held = s.1;
                *s = (Some(now), 0);
                Some(held)
            }
        }
    }
}
