//! hyper client and curl helpers shared by the `hyper` and `https` tests:
//! a client connection of either protocol over any stream, and curl run
//! with the options both use.
//!
//! Needs the `hyper` feature; include with
//! `#[path = "util/http.rs"] mod http;` from a test gated on it.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::{http1, http2};
use hyper::{Method, Request, StatusCode};
use veloq::hyper::{LocalExec, VeloqTimer};

use crate::util::pattern;

/// A hyper client connection on veloq, either protocol.
pub enum Client {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Client {
    /// Starts hyper's client connection for HTTP/2 (`h2`) or HTTP/1.1 on
    /// `io`, its connection task spawned on the current veloq runtime.
    pub async fn handshake<T>(io: T, h2: bool) -> Client
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    {
        if h2 {
            let (sender, conn) = http2::Builder::new(LocalExec)
                .timer(VeloqTimer)
                .handshake(io)
                .await
                .unwrap();
            drop(veloq::spawn(async move {
                let _ = conn.await;
            }));
            Client::H2(sender)
        } else {
            let (sender, conn) = http1::handshake(io).await.unwrap();
            drop(veloq::spawn(async move {
                let _ = conn.await;
            }));
            Client::H1(sender)
        }
    }

    /// Sends one request (`method`, `uri`, a `Host` header of `host`,
    /// `body`) once the connection is ready and reads the whole response.
    pub async fn send(
        &mut self,
        method: Method,
        uri: String,
        host: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Bytes) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, host)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let res = match self {
            Client::H1(s) => {
                s.ready().await.unwrap();
                s.send_request(req).await.unwrap()
            }
            Client::H2(s) => {
                s.ready().await.unwrap();
                s.send_request(req).await.unwrap()
            }
        };
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    }

    /// 200 requests on this one connection, `GET /` and `POST /echo`
    /// (a [`pattern`] body of `100 + i * step` bytes) in turn, to the
    /// server at `base` (`scheme://authority`) with a `Host` of `host`:
    /// each answered right, and the connection still open at the end.
    pub async fn two_hundred_requests(&mut self, base: &str, host: &str, step: usize) {
        for i in 0..200u64 {
            if i % 2 == 0 {
                let uri = format!("{base}/");
                let (status, body) = self.send(Method::GET, uri, host, Vec::new()).await;
                assert_eq!(status, StatusCode::OK, "request {i}");
                assert_eq!(&body[..], b"Hello, world!\n", "request {i}");
            } else {
                let data = pattern(100 + i as usize * step, i);
                let uri = format!("{base}/echo");
                let (status, body) = self.send(Method::POST, uri, host, data.clone()).await;
                assert_eq!(status, StatusCode::OK, "request {i}");
                assert!(body[..] == data[..], "request {i}: the echoed body differs");
            }
        }
        // Still the one connection: a closed one would have failed a send.
        assert!(!self.is_closed());
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        match self {
            Client::H1(s) => s.is_closed(),
            Client::H2(s) => s.is_closed(),
        }
    }
}

/// `streams` echo requests at once on the one HTTP/2 connection of
/// `sender`, one task each: stream `i` posts a [`pattern`] body of
/// `first + i * step` bytes to `{base}/echo` (`Host: host`) and must get
/// it back intact.
pub async fn concurrent_echo_streams(
    sender: &http2::SendRequest<Full<Bytes>>,
    (base, host): (&str, &str),
    streams: u64,
    (first, step): (usize, usize),
) {
    let tasks: Vec<_> = (0..streams)
        .map(|i| {
            let mut c = Client::H2(sender.clone());
            let (uri, host) = (format!("{base}/echo"), host.to_string());
            veloq::spawn(async move {
                let data = pattern(first + i as usize * step, i);
                let (status, body) = c.send(Method::POST, uri, &host, data.clone()).await;
                assert_eq!(status, StatusCode::OK);
                assert!(body[..] == data[..], "stream {i}: the echoed body differs");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Running the `curl` command line tool (Unix, where it is installed).
#[cfg(unix)]
pub mod curl {
    use std::ffi::OsStr;
    use std::process::{Command, Stdio};

    /// Whether curl runs here; says so on stderr when it does not.
    pub fn have_curl() -> bool {
        let ok = Command::new("curl")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("note: curl not found; skipping the curl test");
        }
        ok
    }

    /// Runs `curl -sS --fail --max-time 120`, then `options`, then
    /// `args`, and asserts it succeeded; its stdout.
    pub fn run_curl(options: &[&OsStr], args: &[&str]) -> Vec<u8> {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "120"])
            .args(options)
            .args(args)
            .output()
            .expect("run curl");
        assert!(
            out.status.success(),
            "curl {:?} ({} arguments) failed: {}",
            &args[..args.len().min(8)],
            args.len(),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}
