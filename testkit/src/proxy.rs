//! A TCP fault proxy for tests: listens on a free loopback port, forwards every connection to
//! a target, and can be switched while it runs to inject the faults a network does.
//!
//! - [`Fault::Pass`]: bytes flow both ways untouched.
//! - [`Fault::Delay`]: each chunk is held this long before it goes on, in each direction
//!   (latency, not a bandwidth limit: chunks queue behind each other, none waits twice).
//! - [`Fault::DropNew`]: new connections are accepted and reset at once (a firewall's reject);
//!   open ones carry on.
//! - [`Fault::Blackhole`]: connections are accepted and kept, but nothing is forwarded, like
//!   a partition: bytes wait in the socket buffers (or in the proxy) and flow again, in order,
//!   once the fault is lifted; a connection accepted meanwhile reaches the target only then.
//!
//! [`FaultProxy::reset_all`] resets every open connection on both sides (`SO_LINGER` 0, so
//! the peers read a TCP RST, not an orderly close). The proxy runs on the caller's Tokio
//! runtime and stops when dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What the proxy does to traffic now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward untouched.
    Pass,
    /// Hold each chunk this long, each way.
    Delay(Duration),
    /// Reset new connections at once; open ones carry on.
    DropNew,
    /// Accept and keep connections, forward nothing until the fault changes.
    Blackhole,
}

/// What the proxy has seen, for assertions and reports.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections reset on arrival ([`Fault::DropNew`]).
    pub dropped: AtomicU64,
    /// Connections reset by [`FaultProxy::reset_all`].
    pub reset: AtomicU64,
    /// Connections open now.
    pub open: AtomicUsize,
}

struct Shared {
    target: SocketAddr,
    fault: watch::Sender<Fault>,
    /// Bumped by each [`FaultProxy::reset_all`].
    resets: watch::Sender<u64>,
    closed: watch::Sender<bool>,
    stats: ProxyStats,
}

/// A running fault proxy (see the module documentation).
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("target", &self.shared.target)
            .field("fault", &*self.shared.fault.borrow())
            .finish()
    }
}

impl FaultProxy {
    /// Starts a proxy to `target` on `127.0.0.1:0`, passing traffic.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target,
            fault: watch::channel(Fault::Pass).0,
            resets: watch::channel(0).0,
            closed: watch::channel(false).0,
            stats: ProxyStats::default(),
        });
        let accepting = shared.clone();
        tokio::spawn(async move {
            let mut closed = accepting.closed.subscribe();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => {
                            tokio::spawn(connection(accepting.clone(), client));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                    _ = closing(&mut closed) => return,
                }
            }
        });
        Ok(Self { addr, shared })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Switches to `fault` (open connections follow at once).
    pub fn set(&self, fault: Fault) {
        self.shared.fault.send_replace(fault);
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        *self.shared.fault.borrow()
    }

    /// Resets every open connection, client side and target side (TCP RST).
    pub fn reset_all(&self) {
        self.shared.resets.send_modify(|n| *n += 1);
    }

    /// What it has seen.
    pub fn stats(&self) -> &ProxyStats {
        &self.shared.stats
    }
}

impl Drop for FaultProxy {
    /// Stops accepting and closes every connection.
    fn drop(&mut self) {
        self.shared.closed.send_replace(true);
    }
}

/// Counts a connection open while it lives.
struct OpenGuard<'a>(&'a ProxyStats);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one accepted connection until either side ends it, a reset, or the proxy stops.
async fn connection(shared: Arc<Shared>, client: TcpStream) {
    let stats = &shared.stats;
    stats.accepted.fetch_add(1, Ordering::Relaxed);
    stats.open.fetch_add(1, Ordering::Relaxed);
    let _open = OpenGuard(stats);
    let mut fault = shared.fault.subscribe();
    let mut resets = shared.resets.subscribe();
    resets.borrow_and_update();
    let mut closed = shared.closed.subscribe();
    if *fault.borrow_and_update() == Fault::DropNew {
        stats.dropped.fetch_add(1, Ordering::Relaxed);
        reset(&client);
        return;
    }
    let lifted = tokio::select! {
        lifted = not_blackholed(&mut fault) => lifted,
        _ = resets.changed() => {
            stats.reset.fetch_add(1, Ordering::Relaxed);
            reset(&client);
            return;
        }
        _ = closing(&mut closed) => return,
    };
    if !lifted {
        return;
    }
    let Ok(upstream) = TcpStream::connect(shared.target).await else {
        reset(&client);
        return;
    };
    let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let was_reset = tokio::select! {
        _ = async {
            tokio::join!(
                pump(&mut client_read, &mut upstream_write, shared.fault.subscribe()),
                pump(&mut upstream_read, &mut client_write, shared.fault.subscribe()),
            )
        } => false,
        _ = resets.changed() => true,
        _ = closing(&mut closed) => false,
    };
    if was_reset {
        // Whole again, so that no write half sends a FIN on its way out before the RST.
        stats.reset.fetch_add(1, Ordering::Relaxed);
        for (read, write) in [(client_read, client_write), (upstream_read, upstream_write)] {
            if let Ok(stream) = read.reunite(write) {
                reset(&stream);
            }
        }
    }
}

/// Waits until the proxy stops.
async fn closing(closed: &mut watch::Receiver<bool>) {
    let _ = closed.wait_for(|c| *c).await;
}

/// Waits until no blackhole is in force; `false` when the proxy is gone.
async fn not_blackholed(fault: &mut watch::Receiver<Fault>) -> bool {
    fault.wait_for(|f| *f != Fault::Blackhole).await.is_ok()
}

/// Makes the coming close of `stream` a TCP RST.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// Forwards one direction until end of stream or an error, holding chunks per the fault in
/// force: read (unless blackholed), wait out the delay, write (unless blackholed).
async fn pump(from: &mut OwnedReadHalf, to: &mut OwnedWriteHalf, fault: watch::Receiver<Fault>) {
    let (chunks, mut queued) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let mut reading = fault.clone();
    let mut writing = fault;
    let read = async move {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            if !not_blackholed(&mut reading).await {
                return;
            }
            let n = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let delay = match *reading.borrow() {
                Fault::Delay(delay) => delay,
                _ => Duration::ZERO,
            };
            if chunks.send((Instant::now() + delay, buffer[..n].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let write = async move {
        while let Some((due, chunk)) = queued.recv().await {
            tokio::time::sleep_until(due).await;
            if !not_blackholed(&mut writing).await || to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// An echo server; returns its address and a count of the connections it accepted.
    async fn echo() -> (SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        (addr, accepted)
    }

    async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(message).await?;
        let mut answer = vec![0u8; message.len()];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn passing_forwards_both_ways() {
        let (target, _) = echo().await;
        let proxy = FaultProxy::start(target).await.unwrap();
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"hello").await.unwrap(), b"hello");
        assert_eq!(proxy.stats().accepted.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_delay_holds_each_direction() {
        let (target, _) = echo().await;
        let proxy = FaultProxy::start(target).await.unwrap();
        proxy.set(Fault::Delay(Duration::from_millis(150)));
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let started = std::time::Instant::now();
        assert_eq!(round_trip(&mut stream, b"slow").await.unwrap(), b"slow");
        assert!(started.elapsed() >= Duration::from_millis(300), "held once each way: {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn dropping_new_connections_resets_them_and_spares_open_ones() {
        let (target, accepted) = echo().await;
        let proxy = FaultProxy::start(target).await.unwrap();
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut open, b"a").await.unwrap(), b"a");
        proxy.set(Fault::DropNew);
        let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(round_trip(&mut refused, b"b").await.is_err(), "a new connection must be dropped");
        assert_eq!(round_trip(&mut open, b"c").await.unwrap(), b"c");
        assert_eq!(accepted.load(Ordering::Relaxed), 1, "the dropped one never reached the target");
        assert_eq!(proxy.stats().dropped.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_reset_sends_rst_to_open_connections() {
        let (target, _) = echo().await;
        let proxy = FaultProxy::start(target).await.unwrap();
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"a").await.unwrap(), b"a");
        proxy.reset_all();
        let mut byte = [0u8; 1];
        let error = stream.read(&mut byte).await.expect_err("a reset, not an orderly close");
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut again, b"b").await.unwrap(), b"b", "new connections pass after a reset");
    }

    #[tokio::test]
    async fn a_blackhole_holds_traffic_and_new_connections_until_lifted() {
        let (target, accepted) = echo().await;
        let proxy = FaultProxy::start(target).await.unwrap();
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut open, b"a").await.unwrap(), b"a");
        proxy.set(Fault::Blackhole);
        let mut late = TcpStream::connect(proxy.addr()).await.unwrap();
        late.write_all(b"late").await.unwrap();
        open.write_all(b"held").await.unwrap();
        let mut answer = [0u8; 4];
        let silent = tokio::time::timeout(Duration::from_millis(300), open.read_exact(&mut answer)).await;
        assert!(silent.is_err(), "nothing may come back through a blackhole");
        // The late connection is accepted by the proxy, not yet connected to the target.
        assert_eq!(accepted.load(Ordering::Relaxed), 1);
        proxy.set(Fault::Pass);
        open.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"held", "held bytes flow on once the blackhole is lifted");
        late.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"late");
        assert_eq!(accepted.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_dropped_proxy_closes_its_connections() {
        let (target, _) = echo().await;
        let proxy = FaultProxy::start(target).await.unwrap();
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"a").await.unwrap(), b"a");
        drop(proxy);
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap_or(0), 0, "closed");
    }
}
