//! An HTTP server on hyper 1.x and veloq: HTTP/1.1 and h2c (HTTP/2 over
//! cleartext, prior knowledge) on one port.
//!
//! ```text
//! cargo run --release -p veloq --example hyper_server --features hyper -- 127.0.0.1:8080
//! curl http://127.0.0.1:8080/                                   # Hello, world!
//! curl --http2-prior-knowledge --data-binary @file http://127.0.0.1:8080/echo
//! ```
//!
//! - `GET /` answers `Hello, world!\n`;
//! - `POST /echo` streams the request body back as the response body;
//! - anything else: 404 (405 for `/echo` with another method).
//!
//! Each connection is a task on the worker that accepted it; hyper-util's
//! `auto` builder reads the first bytes to tell HTTP/2's preface from an
//! HTTP/1.1 request. `tests/hyper.rs` runs this file's [`serve`] too.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;

use http_body_util::{Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::server::conn::auto;
use veloq::compat::Compat;
use veloq::hyper::{LocalExec, VeloqTimer};
use veloq::net::{TcpListener, TcpStream};

/// The response body: a fixed text, or the request's body streamed back.
type Body = Either<Full<Bytes>, Incoming>;

/// Answers one request.
async fn handle(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let text = |status: StatusCode, s: &'static str| {
        let mut res = Response::new(Either::Left(Full::new(Bytes::from_static(s.as_bytes()))));
        *res.status_mut() = status;
        res
    };
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => text(StatusCode::OK, "Hello, world!\n"),
        // hyper streams the body: each frame read from the request is
        // written to the response, with flow control on both sides.
        (&Method::POST, "/echo") => Response::new(Either::Right(req.into_body())),
        (_, "/" | "/echo") => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

/// Serves one connection, HTTP/1.1 or HTTP/2, until it closes.
pub async fn serve_connection(stream: TcpStream) {
    // Small responses go out at once.
    let _ = stream.set_nodelay(true);
    let mut builder = auto::Builder::new(LocalExec);
    builder.http1().timer(VeloqTimer);
    builder.http2().timer(VeloqTimer);
    let conn = builder.serve_connection(Compat::new(stream), service_fn(handle));
    if let Err(e) = conn.await {
        eprintln!("hyper_server: connection error: {e}");
    }
}

/// Accepts connections forever, each served by a task of its own on the
/// current worker.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => drop(veloq::spawn(serve_connection(stream))),
            // e.g. out of descriptors: keep serving the open connections.
            Err(e) => {
                eprintln!("hyper_server: accept failed: {e}");
                veloq::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

fn main() -> io::Result<()> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(a) => a
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{a}: {e}")))?,
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
    };
    veloq::block_on(async move {
        let listener = TcpListener::bind(addr)?;
        println!(
            "hyper_server: HTTP/1.1 and h2c on http://{}",
            listener.local_addr()?
        );
        serve(listener).await
    })
}
