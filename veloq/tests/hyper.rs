//! hyper 1.x on veloq (`veloq::hyper`): the example server
//! (`examples/hyper_server.rs`, HTTP/1.1 and h2c on one port) against
//! clients nobody here wrote: hyper's client on veloq, hyper's client on
//! tokio, and `curl` (where installed); hyper's client on veloq against a
//! hyper server on tokio; and the timer (`VeloqTimer`) behind hyper's
//! timeouts.
//!
//! Needs the feature: `cargo test -p veloq --features hyper --test hyper`.
//! Without it the file compiles to nothing.
#![cfg(feature = "hyper")]

mod util;

#[path = "util/http.rs"]
mod http;

#[path = "../examples/hyper_server.rs"]
#[allow(dead_code)]
mod server;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use http::{concurrent_echo_streams, Client};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::{http1, http2};
use hyper::rt::Timer;
use hyper::{Method, Request, Response, StatusCode};
use util::{pattern, within};
use veloq::compat::Compat;
use veloq::hyper::{LocalExec, VeloqSleep, VeloqTimer};
use veloq::net::{TcpListener, TcpStream};

/// Generous: debug builds on a shared 2-core machine (and Wine).
const LIMIT_S: u64 = 120;

// ---------------------------------------------------------------------------
// Helpers

/// Starts the example's server on a fresh port of the current runtime.
fn start_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(veloq::spawn(async move {
        server::serve(listener).await.unwrap();
    }));
    addr
}

/// Starts the example's server on a veloq runtime of its own thread (for
/// clients that are not on veloq). The thread serves until the test
/// process exits.
fn start_server_thread() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        veloq::block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            server::serve(listener).await.unwrap();
        })
    });
    rx.recv().unwrap()
}

impl Client {
    async fn connect_h1(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Client::handshake(Compat::new(stream), false).await
    }

    async fn connect_h2(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Client::handshake(Compat::new(stream), true).await
    }

    /// Sends one request and reads the whole response.
    async fn request(
        &mut self,
        addr: SocketAddr,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Bytes) {
        let uri = format!("http://{addr}{path}");
        self.send(method, uri, &addr.to_string(), body).await
    }
}

/// Runs `f` on a fresh veloq runtime, failing the test after `LIMIT_S`.
fn run<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    within(LIMIT_S, move || veloq::block_on(f()));
}

fn hello_h(h2: bool) {
    run(move || async move {
        let addr = start_server();
        let mut c = if h2 {
            Client::connect_h2(addr).await
        } else {
            Client::connect_h1(addr).await
        };
        let (status, body) = c.request(addr, Method::GET, "/", Vec::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"Hello, world!\n");
        let (status, _) = c.request(addr, Method::GET, "/nope", Vec::new()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    });
}

fn echo_1mib(h2: bool) {
    run(move || async move {
        let addr = start_server();
        let mut c = if h2 {
            Client::connect_h2(addr).await
        } else {
            Client::connect_h1(addr).await
        };
        let data = pattern(1 << 20, if h2 { 2 } else { 1 });
        let (status, body) = c.request(addr, Method::POST, "/echo", data.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.len(), data.len());
        assert!(body[..] == data[..], "the echoed body differs");
    });
}

fn keep_alive_200(h2: bool) {
    run(move || async move {
        let addr = start_server();
        let mut c = if h2 {
            Client::connect_h2(addr).await
        } else {
            Client::connect_h1(addr).await
        };
        c.two_hundred_requests(&format!("http://{addr}"), &addr.to_string(), 37)
            .await;
    });
}

// ---------------------------------------------------------------------------
// hyper's client on veloq against the server on veloq

#[test]
fn h1_get_hello() {
    hello_h(false);
}

#[test]
fn h2_get_hello() {
    hello_h(true);
}

#[test]
fn h1_echo_1mib() {
    echo_1mib(false);
}

#[test]
fn h2_echo_1mib() {
    echo_1mib(true);
}

#[test]
fn h1_200_requests_one_connection() {
    keep_alive_200(false);
}

#[test]
fn h2_200_requests_one_connection() {
    keep_alive_200(true);
}

#[test]
fn h2_concurrent_streams() {
    // Many requests in flight on one HTTP/2 connection at once: each
    // stream is a task spawned through `LocalExec` on the server.
    run(|| async {
        let addr = start_server();
        let Client::H2(sender) = Client::connect_h2(addr).await else {
            unreachable!()
        };
        let (base, host) = (format!("http://{addr}"), addr.to_string());
        concurrent_echo_streams(&sender, (&base, &host), 32, (10_000, 1000)).await;
    });
}

#[test]
fn h2_server_builder_with_keep_alive_pings() {
    // hyper's own HTTP/2 server builder on `LocalExec`, with keep-alive
    // pings every 20 ms: the ping timer is a `VeloqSleep` that hyper moves
    // with `Timer::reset` after every ping.
    run(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(veloq::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"pong"))))
            });
            let res = hyper::server::conn::http2::Builder::new(LocalExec)
                .timer(VeloqTimer)
                .keep_alive_interval(Duration::from_millis(20))
                .keep_alive_timeout(Duration::from_secs(10))
                .serve_connection(Compat::new(stream), svc)
                .await;
            res.unwrap();
        }));
        let mut c = Client::connect_h2(addr).await;
        for _ in 0..3 {
            let (status, body) = c.request(addr, Method::GET, "/", Vec::new()).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(&body[..], b"pong");
            // Idle long enough for several pings each way.
            veloq::time::sleep(Duration::from_millis(150)).await;
        }
    });
}

// ---------------------------------------------------------------------------
// hyper's client on tokio against the server on veloq, and the reverse

/// A tokio current-thread runtime (I/O on) for this thread.
fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap()
}

/// A hyper client on tokio: sends `reqs` requests over one connection and
/// checks each answer.
async fn tokio_client(addr: SocketAddr, h2: bool, data: Vec<u8>) {
    use hyper_util::rt::TokioIo;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let io = TokioIo::new(stream);
    let req = |method: Method, path: &str, body: Vec<u8>| {
        Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header(hyper::header::HOST, addr.to_string())
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let mut responses: Vec<Response<Incoming>> = Vec::new();
    if h2 {
        let (mut s, conn) = http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        responses.push(s.send_request(req(Method::GET, "/", vec![])).await.unwrap());
        responses.push(
            s.send_request(req(Method::POST, "/echo", data.clone()))
                .await
                .unwrap(),
        );
    } else {
        let (mut s, conn) = http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        responses.push(s.send_request(req(Method::GET, "/", vec![])).await.unwrap());
        // One connection: the second request follows the first's answer.
        let hello = responses.pop().unwrap();
        assert_eq!(hello.status(), StatusCode::OK);
        let body = hello.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"Hello, world!\n");
        s.ready().await.unwrap();
        responses.push(
            s.send_request(req(Method::POST, "/echo", data.clone()))
                .await
                .unwrap(),
        );
    }
    let mut bodies = Vec::new();
    for res in responses {
        assert_eq!(res.status(), StatusCode::OK);
        bodies.push(res.into_body().collect().await.unwrap().to_bytes());
    }
    let echo = bodies.pop().unwrap();
    assert!(echo[..] == data[..], "the echoed body differs");
    if let Some(hello) = bodies.pop() {
        assert_eq!(&hello[..], b"Hello, world!\n");
    }
}

#[test]
fn tokio_client_h1_against_veloq_server() {
    let addr = start_server_thread();
    within(LIMIT_S, move || {
        tokio_rt().block_on(tokio_client(addr, false, pattern(1 << 20, 3)))
    });
}

#[test]
fn tokio_client_h2_against_veloq_server() {
    let addr = start_server_thread();
    within(LIMIT_S, move || {
        tokio_rt().block_on(tokio_client(addr, true, pattern(1 << 20, 4)))
    });
}

/// A hyper server (HTTP/1.1 and h2c, hyper-util's `auto` builder) on a
/// tokio current-thread runtime of its own thread, with the example's
/// answers.
fn start_tokio_server() -> SocketAddr {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tokio_rt().block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let res = if req.uri().path() == "/echo" {
                            Response::new(http_body_util::Either::Right(req.into_body()))
                        } else {
                            Response::new(http_body_util::Either::Left(Full::new(
                                Bytes::from_static(b"Hello, world!\n"),
                            )))
                        };
                        Ok::<_, Infallible>(res)
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        })
    });
    rx.recv().unwrap()
}

#[test]
fn veloq_client_against_tokio_server() {
    let addr = start_tokio_server();
    for h2 in [false, true] {
        run(move || async move {
            let mut c = if h2 {
                Client::connect_h2(addr).await
            } else {
                Client::connect_h1(addr).await
            };
            let (status, body) = c.request(addr, Method::GET, "/", Vec::new()).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(&body[..], b"Hello, world!\n");
            let data = pattern(1 << 20, 5);
            for _ in 0..3 {
                let (status, body) = c.request(addr, Method::POST, "/echo", data.clone()).await;
                assert_eq!(status, StatusCode::OK);
                assert!(body[..] == data[..], "the echoed body differs (h2: {h2})");
            }
        });
    }
}

// ---------------------------------------------------------------------------
// The timer

#[test]
fn timer_sleep_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<VeloqSleep>();
    assert_send_sync::<VeloqTimer>();
    assert_send_sync::<LocalExec>();
}

#[test]
fn timer_sleeps_resets_and_drops() {
    run(|| async {
        let timer = VeloqTimer;
        // Completes, not before its deadline.
        let start = Instant::now();
        timer.sleep(Duration::from_millis(30)).await;
        assert!(start.elapsed() >= Duration::from_millis(30));

        // Reset to later while the timer task waits.
        let start = Instant::now();
        let mut s = timer.sleep(Duration::from_millis(20));
        assert!(util::poll_once(s.as_mut()).await.is_pending());
        timer.reset(&mut s, start + Duration::from_millis(80));
        s.as_mut().await;
        assert!(start.elapsed() >= Duration::from_millis(80));

        // Reset to earlier while the timer task waits.
        let start = Instant::now();
        let mut s = timer.sleep(Duration::from_secs(3600));
        assert!(util::poll_once(s.as_mut()).await.is_pending());
        timer.reset(&mut s, start + Duration::from_millis(20));
        s.as_mut().await;
        assert!(start.elapsed() < Duration::from_secs(60));

        // Reset after completion: waits again.
        let again = Instant::now();
        timer.reset(&mut s, again + Duration::from_millis(20));
        assert!(util::poll_once(s.as_mut()).await.is_pending());
        s.as_mut().await;
        assert!(again.elapsed() >= Duration::from_millis(20));

        // Dropped while waiting: its timer task ends, nothing fires later.
        let mut s = timer.sleep(Duration::from_millis(10));
        assert!(util::poll_once(s.as_mut()).await.is_pending());
        drop(s);
        veloq::time::sleep(Duration::from_millis(30)).await;

        // A sleep is `Send`: one whose deadline has passed spawns nothing
        // and completes on any thread, runtime or not.
        let s: Pin<Box<dyn hyper::rt::Sleep>> = timer.sleep(Duration::ZERO);
        std::thread::spawn(move || poll_to_end(s)).join().unwrap();
    });
}

/// Polls `fut` to completion on this thread without a runtime (for a
/// future that is ready at once).
fn poll_to_end<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

#[test]
fn header_read_timeout_closes_idle_connection() {
    // hyper's HTTP/1 header-read timeout runs on `VeloqTimer`: a client
    // that sends half a request head is disconnected when it fires.
    run(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(veloq::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"x"))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(VeloqTimer)
                .header_read_timeout(Duration::from_millis(200))
                .serve_connection(Compat::new(stream), svc)
                .await;
        }));
        let client = TcpStream::connect(addr).await.unwrap();
        let start = Instant::now();
        let (res, _) = client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec())
            .await;
        res.unwrap();
        // The server answers 408 or just closes; either way the stream
        // reaches its end.
        let mut got = Vec::new();
        loop {
            let (res, buf) = client.read(vec![0u8; 4096]).await;
            match res {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(150),
            "closed after {waited:?}"
        );
        assert!(waited < Duration::from_secs(30), "closed after {waited:?}");
        assert!(
            got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
            "unexpected answer: {:?}",
            String::from_utf8_lossy(&got)
        );
    });
}

// ---------------------------------------------------------------------------
// curl against the server (skipped where curl is not installed)

#[cfg(unix)]
mod curl {
    use super::*;
    use http::curl::{have_curl, run_curl};
    use std::process::Command;

    /// curl's major version (0 if unknown).
    fn curl_major() -> u32 {
        let out = Command::new("curl")
            .arg("--version")
            .output()
            .expect("run curl");
        // "curl 7.88.1 (x86_64-pc-linux-gnu) ..."
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }

    /// Runs curl with `args` (plus `-sS --fail`); its stdout.
    fn curl(args: &[&str]) -> Vec<u8> {
        run_curl(&[], args)
    }

    #[test]
    fn curl_h1_and_h2c() {
        if !have_curl() {
            return;
        }
        let addr = start_server_thread();
        let url = format!("http://{addr}/");
        let echo = format!("http://{addr}/echo");
        let dir = util::TempPath::new("hyper-curl");
        std::fs::create_dir_all(&dir.0).unwrap();
        let input = dir.0.join("in");
        let data = pattern(50 << 20, 6);
        std::fs::write(&input, &data).unwrap();
        let upload = format!("@{}", input.display());
        let urls: Vec<&str> = (0..200).map(|_| url.as_str()).collect();

        for proto in ["--http1.1", "--http2-prior-knowledge"] {
            // GET /.
            assert_eq!(curl(&[proto, &url]), b"Hello, world!\n", "{proto}");

            // 200 requests, one connection: curl reuses it; after each
            // body it prints how many connections that transfer opened.
            // curl before 8.0 breaks a reused prior-knowledge HTTP/2
            // connection itself ("Error in the HTTP2 framing layer",
            // curl issue 10634); hyper's clients cover that case above.
            if proto == "--http2-prior-knowledge" && curl_major() < 8 {
                eprintln!("note: curl < 8.0 cannot reuse an h2c connection; skipping that part");
            } else {
                let mut args = vec![proto, "-w", "|%{num_connects}\\n"];
                args.extend(urls.iter().copied());
                let out = String::from_utf8(curl(&args)).unwrap();
                let hellos = out.lines().filter(|l| *l == "Hello, world!").count();
                assert_eq!(hellos, 200, "{proto}: {out}");
                let counts: Vec<u32> = out
                    .lines()
                    .filter_map(|l| l.strip_prefix('|'))
                    .map(|n| n.trim().parse().unwrap())
                    .collect();
                assert_eq!(counts.len(), 200, "{proto}: {out}");
                assert_eq!(
                    counts.iter().sum::<u32>(),
                    1,
                    "{proto}: connects per request {counts:?}"
                );
            }

            // A 50 MiB POST echoed back intact.
            let output = dir.0.join("out");
            let out_path = output.to_str().unwrap();
            curl(&[
                proto,
                "-H",
                "Content-Type: application/octet-stream",
                "--data-binary",
                &upload,
                "-o",
                out_path,
                &echo,
            ]);
            let back = std::fs::read(&output).unwrap();
            assert_eq!(back.len(), data.len(), "{proto}");
            assert!(back == data, "{proto}: the echoed body differs");
            std::fs::remove_file(&output).unwrap();
        }
    }
}
