//! The floor under chujing, for the load harness: a reverse proxy built from the same parts
//! (hyper's HTTP/1.1 server and client, one single-threaded tokio runtime per worker thread,
//! connections handed out round robin, a per-worker pool of keep-alive upstream
//! connections, mimalloc) and nothing else — no inspection, no decision, no audit line, no
//! limits, timeouts or metrics. Next to nginx (the ceiling) and chujing it shows how much of
//! the gap is the stack and how much is chujing's own work per request.
//!
//! Not a product: it answers every failure by dropping the connection.
//!
//! ```text
//! cargo build --release --example hyper_floor
//! target/release/examples/hyper_floor LISTEN UPSTREAM [WORKERS]
//! ```

use std::cell::RefCell;
use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

// The same allocator as chujing, so the floor differs from it only in chujing's work.
#[global_allocator]
static GLOBAL: chujing::alloc::Mimalloc = chujing::alloc::Mimalloc;

thread_local! {
    /// This worker's idle upstream connections.
    static POOL: RefCell<Vec<SendRequest<Incoming>>> = const { RefCell::new(Vec::new()) };
}

async fn checkout(upstream: SocketAddr) -> std::io::Result<SendRequest<Incoming>> {
    while let Some(mut sender) = POOL.with(|p| p.borrow_mut().pop()) {
        if sender.ready().await.is_ok() {
            return Ok(sender);
        }
    }
    let tcp = TcpStream::connect(upstream).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(std::io::Error::other)?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn forward(
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Incoming>, std::io::Error> {
    let mut sender = checkout(upstream).await?;
    let (mut parts, body) = req.into_parts();
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".parse(), |pq| pq.as_str().parse())
        .map_err(std::io::Error::other)?;
    parts.headers.remove(http::header::CONNECTION);
    let response = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(std::io::Error::other)?;
    // Busy until the response body is read; the next checkout waits for that.
    POOL.with(|p| p.borrow_mut().push(sender));
    Ok(response)
}

/// One worker: a single-threaded runtime serving the connections handed to it.
fn worker(
    upstream: SocketAddr,
    mut streams: tokio::sync::mpsc::UnboundedReceiver<std::net::TcpStream>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("worker runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        while let Some(stream) = streams.recv().await {
            // Registered with this worker's reactor, on its thread.
            let Ok(stream) = TcpStream::from_std(stream) else {
                continue;
            };
            tokio::task::spawn_local(async move {
                let service = hyper::service::service_fn(move |req| forward(upstream, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: hyper_floor LISTEN UPSTREAM [WORKERS], e.g. 127.0.0.1:18092 127.0.0.2:18081 2";
    let listen: SocketAddr = args.get(1).ok_or(usage)?.parse()?;
    let upstream: SocketAddr = args.get(2).ok_or(usage)?.parse()?;
    let workers: usize = args.get(3).map_or(Ok(2), |w| w.parse())?;
    let mut senders = Vec::new();
    for _ in 0..workers.max(1) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        senders.push(tx);
        std::thread::spawn(move || worker(upstream, rx));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen).await?;
        for next in 0usize.. {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let _ = senders[next % senders.len()].send(stream.into_std()?);
        }
        Ok::<(), std::io::Error>(())
    })?;
    Ok(())
}
