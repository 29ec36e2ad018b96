//! A WAN in front of loopback sshd hosts: a TCP proxy per host that delays every byte by half
//! the round trip in each direction and paces each direction at a link rate, so round trips
//! and bytes cost what they cost across a real network. It counts the bytes it carries. The
//! benchmarks measure through it; tests use it to be far away.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Running proxies: where they listen, and the bytes they carried each way.
#[derive(Debug)]
pub struct Wan {
    /// `(address, port)` of each host's proxy, in host order.
    pub listen: Vec<(String, u16)>,
    /// Bytes from clients to hosts.
    pub up: Arc<AtomicU64>,
    /// Bytes from hosts to clients.
    pub down: Arc<AtomicU64>,
    _runtime: tokio::runtime::Runtime,
}

impl Wan {
    /// Bytes carried so far, (up, down), and the counters reset.
    pub fn take_bytes(&self) -> (u64, u64) {
        (
            self.up.swap(0, Ordering::SeqCst),
            self.down.swap(0, Ordering::SeqCst),
        )
    }
}

/// One proxy per `(address, port)`, on the same address and `port + 1`.
pub fn start(hosts: &[(String, u16)], rtt: Duration, bits_per_s: u64) -> Wan {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("proxy runtime");
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut listen = Vec::new();
    for (addr, port) in hosts {
        let target = format!("{addr}:{port}");
        let at = (addr.clone(), port + 1);
        let listener = runtime
            .block_on(TcpListener::bind((at.0.as_str(), at.1)))
            .expect("bind a proxy");
        let (up, down) = (Arc::clone(&up), Arc::clone(&down));
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let target = target.clone();
                let (up, down) = (Arc::clone(&up), Arc::clone(&down));
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let one_way = rtt / 2;
                    tokio::join!(
                        link(cr, sw, one_way, bits_per_s, up),
                        link(sr, cw, one_way, bits_per_s, down),
                    );
                });
            }
        });
        listen.push(at);
    }
    Wan {
        listen,
        up,
        down,
        _runtime: runtime,
    }
}

/// One direction: what is read leaves when the link is free, at `bits_per_s`, and arrives
/// `delay` later.
async fn link(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    bits_per_s: u64,
    counted: Arc<AtomicU64>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut link_free = Instant::now();
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            counted.fetch_add(n as u64, Ordering::Relaxed);
            #[allow(clippy::cast_precision_loss)] // a chunk is at most 16 KiB
            let on_wire = Duration::from_secs_f64(n as f64 * 8.0 / bits_per_s as f64);
            link_free = link_free.max(Instant::now()) + on_wire;
            if tx.send((link_free + delay, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((arrives, data)) = rx.recv().await {
            tokio::time::sleep_until(arrives).await;
            if to.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// `known_hosts` rewritten for the proxies: each `[address]:port` entry as `[address]:port+1`.
pub fn known_hosts(original: &std::path::Path, out: &std::path::Path) {
    let text = std::fs::read_to_string(original).expect("read known_hosts");
    let rewritten: String = text
        .lines()
        .map(|l| {
            let (name, key) = l.split_once(' ').unwrap_or((l, ""));
            let moved = name
                .rsplit_once("]:")
                .and_then(|(host, port)| Some(format!("{host}]:{}", port.parse::<u16>().ok()? + 1)))
                .unwrap_or_else(|| name.to_owned());
            format!("{moved} {key}\n")
        })
        .collect();
    std::fs::write(out, rewritten).expect("write the proxies' known_hosts");
}
