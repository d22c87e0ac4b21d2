//! An HTTP server on hyper 1.x and veloq: HTTP/1.1 and h2c (HTTP/2 over
//! cleartext, prior knowledge) on one port, or HTTPS (rustls, ALPN `h2` and
//! `http/1.1`) with `--tls CERT.pem KEY.pem`.
//!
//! ```text
//! cargo run --release -p veloq --example hyper_server --features hyper -- 127.0.0.1:8080
//! curl http://127.0.0.1:8080/                                   # Hello, world!
//! curl --http2-prior-knowledge --data-binary @file http://127.0.0.1:8080/echo
//!
//! cargo run --release -p veloq --example hyper_server --features hyper -- \
//!     127.0.0.1:8443 --tls cert.pem key.pem
//! curl --cacert ca.pem https://localhost:8443/                  # HTTP/2 by ALPN
//! ```
//!
//! `CERT.pem` holds the server's certificate chain (leaf first), `KEY.pem`
//! its private key (PKCS#8, PKCS#1 or SEC1). No key ships with veloq: the
//! tests (`tests/https.rs`) make a CA and a certificate with rcgen.
//!
//! - `GET /` answers `Hello, world!\n`;
//! - `POST /echo` streams the request body back as the response body;
//! - anything else: 404 (405 for `/echo` with another method).
//!
//! Each connection is a task on the worker that accepted it; hyper-util's
//! `auto` builder reads the first bytes to tell HTTP/2's preface from an
//! HTTP/1.1 request. `tests/hyper.rs` runs this file's [`serve`] too, and
//! `tests/https.rs` its [`serve_tls`].

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use http_body_util::{Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
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

/// Serves one connection of any transport, HTTP/1.1 or HTTP/2, until it
/// closes.
async fn serve_io<I>(io: I)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
{
    let mut builder = auto::Builder::new(LocalExec);
    builder.http1().timer(VeloqTimer);
    builder.http2().timer(VeloqTimer);
    let conn = builder.serve_connection(io, service_fn(handle));
    if let Err(e) = conn.await {
        eprintln!("hyper_server: connection error: {e}");
    }
}

/// Serves one connection, HTTP/1.1 or HTTP/2, until it closes.
pub async fn serve_connection(stream: TcpStream) {
    // Small responses go out at once.
    let _ = stream.set_nodelay(true);
    serve_io(Compat::new(stream)).await;
}

/// Serves one TLS connection: the handshake (ALPN picks `h2` or
/// `http/1.1`), then HTTP as on a plain connection.
pub async fn serve_tls_connection(stream: TcpStream, acceptor: TlsAcceptor) {
    let _ = stream.set_nodelay(true);
    match acceptor.accept(Compat::new(stream)).await {
        // rustls speaks tokio's I/O traits; hyper-util's `TokioIo` turns
        // them into hyper's.
        Ok(tls) => serve_io(TokioIo::new(tls)).await,
        Err(e) => eprintln!("hyper_server: TLS handshake failed: {e}"),
    }
}

/// A TLS acceptor with the certificate chain in `cert` and the private key
/// in `key` (PEM files), offering HTTP/2 and HTTP/1.1 by ALPN.
///
/// Unreadable files are the I/O error of the read; files without a
/// certificate or key, or a key that does not match, are `InvalidData`.
pub fn tls_acceptor(cert: &Path, key: &Path) -> io::Result<TlsAcceptor> {
    let invalid = |what: &Path, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", what.display()),
        )
    };
    // Read the files here so a missing file keeps its own error kind.
    let read = |path: &Path| {
        std::fs::read(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(cert, &e))?;
    if chain.is_empty() {
        return Err(invalid(cert, &"no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| invalid(key, &e))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| invalid(key, &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections forever, each served by a task of its own on the
/// current worker.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    accept_loop(listener, |stream| {
        drop(veloq::spawn(serve_connection(stream)))
    })
    .await
}

/// [`serve`] over TLS: each connection's handshake and requests run in a
/// task of its own on the current worker.
pub async fn serve_tls(listener: TcpListener, acceptor: TlsAcceptor) -> io::Result<()> {
    accept_loop(listener, move |stream| {
        drop(veloq::spawn(serve_tls_connection(stream, acceptor.clone())))
    })
    .await
}

/// Accepts connections forever and hands each to `start`.
async fn accept_loop(listener: TcpListener, start: impl Fn(TcpStream)) -> io::Result<()> {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => start(stream),
            // e.g. out of descriptors: keep serving the open connections.
            Err(e) => {
                eprintln!("hyper_server: accept failed: {e}");
                veloq::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// The command line: `[ADDR] [--tls CERT.pem KEY.pem]`.
fn parse_args(
    mut args: impl Iterator<Item = String>,
) -> io::Result<(SocketAddr, Option<TlsAcceptor>)> {
    let usage = |msg: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{msg}\nusage: hyper_server [ADDR] [--tls CERT.pem KEY.pem]"),
        )
    };
    let mut addr = None;
    let mut tls = None;
    while let Some(arg) = args.next() {
        if arg == "--tls" {
            let (Some(cert), Some(key)) = (args.next(), args.next()) else {
                return Err(usage("--tls needs CERT.pem and KEY.pem".into()));
            };
            tls = Some(tls_acceptor(Path::new(&cert), Path::new(&key))?);
        } else if addr.is_none() && !arg.starts_with('-') {
            addr = Some(arg.parse().map_err(|e| usage(format!("{arg}: {e}")))?);
        } else {
            return Err(usage(format!("unexpected argument {arg}")));
        }
    }
    let default_port = if tls.is_some() { 8443 } else { 8080 };
    Ok((
        addr.unwrap_or(SocketAddr::from(([127, 0, 0, 1], default_port))),
        tls,
    ))
}

fn main() -> io::Result<()> {
    let (addr, tls) = parse_args(std::env::args().skip(1))?;
    veloq::block_on(async move {
        let listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        match tls {
            Some(acceptor) => {
                println!("hyper_server: HTTP/2 and HTTP/1.1 over TLS on https://{local}");
                serve_tls(listener, acceptor).await
            }
            None => {
                println!("hyper_server: HTTP/1.1 and h2c on http://{local}");
                serve(listener).await
            }
        }
    })
}
