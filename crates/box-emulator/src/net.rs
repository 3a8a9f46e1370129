//! The emulator's TCP side: a listener that sets TCP_NODELAY on every connection (without
//! it each small response waits ~40 ms for the peer's delayed ACK), paces each connection
//! to `--bandwidth` bytes per second in each direction, and can cut a connection dead
//! mid-request (the "dropped connection" fault) through a per-connection kill switch.
//! With `serve_https`, [`TlsListener`] puts TLS on top of those connections.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// What a handler knows about its connection.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    /// Set it and the connection fails on its next read or write, without a response.
    pub kill: Arc<AtomicBool>,
}

impl ConnInfo {
    pub fn drop_connection(&self) {
        self.kill.store(true, Ordering::SeqCst);
    }
}

pub struct EmuListener {
    pub inner: TcpListener,
    /// Bytes per second per connection and direction; 0 = unlimited. Shared with the knobs.
    pub bandwidth: Arc<AtomicU64>,
}

impl axum::serve::Listener for EmuListener {
    type Io = PacedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let io = PacedStream {
                        inner: stream,
                        remote: addr,
                        bandwidth: self.bandwidth.clone(),
                        kill: Arc::new(AtomicBool::new(false)),
                        read_pace: Pace::default(),
                        write_pace: Pace::default(),
                    };
                    return (io, addr);
                }
                // Out of file descriptors and the like: wait a little, as hyper's own
                // listener does, instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl Connected<IncomingStream<'_, EmuListener>> for ConnInfo {
    fn connect_info(stream: IncomingStream<'_, EmuListener>) -> Self {
        ConnInfo {
            remote: stream.io().remote,
            kill: stream.io().kill.clone(),
        }
    }
}

/// The listener when the emulator serves HTTPS: each TLS handshake runs in a task of its
/// own (a client that connects and says nothing holds up nobody, and gives up after
/// [`HANDSHAKE_TIMEOUT`]), and connections are handed to the server as their handshakes
/// complete. Pacing and the kill switch work beneath TLS as on plain connections.
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<PacedStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl TlsListener {
    pub fn new(mut inner: EmuListener, acceptor: TlsAcceptor) -> io::Result<TlsListener> {
        use axum::serve::Listener;
        let local = inner.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let accepting = tokio::spawn(async move {
            loop {
                let (io, addr) = inner.accept().await;
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => {
                            log::debug!("emulator: TLS handshake from {addr} failed: {e}")
                        }
                        Err(_) => log::debug!("emulator: TLS handshake from {addr} timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // Stops accepting, which closes the listening socket.
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<PacedStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task ended (it never does on its own): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for ConnInfo {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        let (tcp, _) = stream.io().get_ref();
        ConnInfo {
            remote: tcp.remote,
            kill: tcp.kill.clone(),
        }
    }
}

/// A token-bucket-free pacer: after moving `n` bytes the next move may start `n / rate`
/// seconds after the previous allowance.
#[derive(Default)]
struct Pace {
    next: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Pace {
    /// Ready when the pacing deadline has passed; registers a timer otherwise.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(sleep) = self.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.sleep = None;
        }
        Poll::Ready(())
    }

    /// How many bytes to move now: about 10 ms worth of the rate.
    fn quantum(rate: u64, want: usize) -> usize {
        let q = (rate / 100).max(1024) as usize;
        want.min(q)
    }

    fn account(&mut self, rate: u64, n: usize) {
        let now = Instant::now();
        let start = match self.next {
            // Idle time is not banked beyond a few milliseconds.
            Some(t) if t > now - Duration::from_millis(5) => t,
            _ => now,
        };
        let next = start + Duration::from_secs_f64(n as f64 / rate as f64);
        self.next = Some(next);
        if next > now + Duration::from_millis(1) {
            self.sleep = Some(Box::pin(tokio::time::sleep_until(next)));
        }
    }
}

pub struct PacedStream {
    inner: TcpStream,
    remote: SocketAddr,
    bandwidth: Arc<AtomicU64>,
    kill: Arc<AtomicBool>,
    read_pace: Pace,
    write_pace: Pace,
}

fn killed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "connection dropped by fault injection",
    )
}

impl AsyncRead for PacedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.kill.load(Ordering::Relaxed) {
            return Poll::Ready(Err(killed()));
        }
        let rate = this.bandwidth.load(Ordering::Relaxed);
        if rate == 0 {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.read_pace.poll_ready(cx).is_pending() {
            return Poll::Pending;
        }
        let want = Pace::quantum(rate, buf.remaining());
        let mut limited = buf.take(want);
        let res = Pin::new(&mut this.inner).poll_read(cx, &mut limited);
        let n = limited.filled().len();
        if let Poll::Ready(Ok(())) = res {
            // SAFETY-free: `take` shares the buffer; advance the outer cursor by what was read.
            unsafe { buf.assume_init(n) };
            buf.advance(n);
            if n > 0 {
                this.read_pace.account(rate, n);
            }
        }
        res
    }
}

impl AsyncWrite for PacedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.kill.load(Ordering::Relaxed) {
            return Poll::Ready(Err(killed()));
        }
        let rate = this.bandwidth.load(Ordering::Relaxed);
        if rate == 0 {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        if this.write_pace.poll_ready(cx).is_pending() {
            return Poll::Pending;
        }
        let want = Pace::quantum(rate, data.len());
        let res = Pin::new(&mut this.inner).poll_write(cx, &data[..want]);
        if let Poll::Ready(Ok(n)) = res {
            if n > 0 {
                this.write_pace.account(rate, n);
            }
        }
        res
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.kill.load(Ordering::Relaxed) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
