//! HTTPS: the example server (`examples/hyper_server.rs`, its `--tls`
//! mode: rustls through `veloq::compat::Compat`, ALPN `h2` and `http/1.1`)
//! against hyper's client on veloq over rustls (every platform, Wine
//! included) and `curl` with the test CA (Unix, where curl is installed).
//!
//! Each test makes a CA and a `localhost` certificate signed by it with
//! rcgen and writes them as PEM files to a temporary directory, which the
//! server loads the way its command line does; no key is stored anywhere.
//!
//! Needs the feature: `cargo test -p veloq --features hyper --test https`.
#![cfg(feature = "hyper")]

mod util;

#[path = "util/http.rs"]
mod http;

#[path = "../examples/hyper_server.rs"]
#[allow(dead_code)]
mod server;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use http::{concurrent_echo_streams, Client};
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use util::{pattern, within, TempPath};
use veloq::compat::Compat;
use veloq::net::{TcpListener, TcpStream};

/// Generous: debug builds on a shared 2-core machine (and Wine).
const LIMIT_S: u64 = 180;

// ---------------------------------------------------------------------------
// Certificates

/// A test PKI on disk: a CA, and a certificate for `localhost` and
/// 127.0.0.1 that it signed, with its key. Removed when dropped.
struct Pki {
    dir: TempPath,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempPath::new("https-pki");
        std::fs::create_dir_all(&dir.0).unwrap();

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "veloq test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();

        let write = |name: &str, pem: String| {
            let path = dir.0.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let ca = write("ca.pem", ca.pem());
        let cert = write("cert.pem", leaf.pem());
        let key = write("key.pem", leaf_key.serialize_pem());
        Pki { dir, ca, cert, key }
    }

    /// A rustls client configuration trusting this CA only, offering
    /// `alpn`.
    fn client_config(&self, alpn: &[u8]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&self.ca).unwrap())
            .unwrap();
        let mut config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(config)
    }
}

/// Starts the example's HTTPS server with `pki`'s certificate on a veloq
/// runtime of its own thread. The thread serves until the test process
/// exits.
fn start_https_server(pki: &Pki) -> SocketAddr {
    let acceptor = server::tls_acceptor(&pki.cert, &pki.key).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        veloq::block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            server::serve_tls(listener, acceptor).await.unwrap();
        })
    });
    rx.recv().unwrap()
}

// ---------------------------------------------------------------------------
// hyper's client on veloq over rustls

type Tls = TokioIo<TlsStream<Compat<TcpStream>>>;

impl Client {
    /// Connects, completes the TLS handshake offering only `h2` or only
    /// `http/1.1`, checks that the server chose it, and starts hyper's
    /// client connection for that protocol.
    async fn connect(pki: &Pki, addr: SocketAddr, h2: bool) -> Client {
        let alpn: &[u8] = if h2 { b"h2" } else { b"http/1.1" };
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let tls = TlsConnector::from(pki.client_config(alpn))
            .connect(
                ServerName::try_from("localhost").unwrap(),
                Compat::new(stream),
            )
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
        let io: Tls = TokioIo::new(tls);
        Client::handshake(io, h2).await
    }

    /// Sends one request and reads the whole response.
    async fn request(&mut self, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Bytes) {
        let uri = format!("https://localhost{path}");
        self.send(method, uri, "localhost", body).await
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

/// GET /, a 404, a 4 MiB echo, then 200 more requests (GETs and echoes of
/// varying sizes) on the same connection.
fn hyper_client_over_tls(h2: bool) {
    let pki = Pki::new();
    let addr = start_https_server(&pki);
    run(move || async move {
        let mut c = Client::connect(&pki, addr, h2).await;
        let (status, body) = c.request(Method::GET, "/", Vec::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"Hello, world!\n");
        let (status, _) = c.request(Method::GET, "/nope", Vec::new()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let data = pattern(4 << 20, if h2 { 12 } else { 11 });
        let (status, body) = c.request(Method::POST, "/echo", data.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.len(), data.len());
        assert!(body[..] == data[..], "the echoed 4 MiB body differs");

        c.two_hundred_requests("https://localhost", "localhost", 373)
            .await;
    });
}

#[test]
fn hyper_h1_client_over_tls() {
    hyper_client_over_tls(false);
}

#[test]
fn hyper_h2_client_over_tls() {
    hyper_client_over_tls(true);
}

#[test]
fn h2_concurrent_streams_over_tls() {
    let pki = Pki::new();
    let addr = start_https_server(&pki);
    run(move || async move {
        let Client::H2(sender) = Client::connect(&pki, addr, true).await else {
            unreachable!()
        };
        concurrent_echo_streams(
            &sender,
            ("https://localhost", "localhost"),
            16,
            (20_000, 5_000),
        )
        .await;
    });
}

#[test]
fn a_client_without_the_ca_fails_and_the_server_lives_on() {
    let pki = Pki::new();
    let other = Pki::new(); // a different CA
    let addr = start_https_server(&pki);
    run(move || async move {
        let stream = TcpStream::connect(addr).await.unwrap();
        let res = TlsConnector::from(other.client_config(b"h2"))
            .connect(
                ServerName::try_from("localhost").unwrap(),
                Compat::new(stream),
            )
            .await;
        let Err(err) = res else {
            panic!("a handshake with an untrusted CA succeeded");
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        // The failed handshake cost the server that connection only.
        let mut c = Client::connect(&pki, addr, false).await;
        let (status, body) = c.request(Method::GET, "/", Vec::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"Hello, world!\n");
    });
}

// ---------------------------------------------------------------------------
// The `--tls` files: bad input is an error of the right kind

#[test]
fn tls_acceptor_rejects_missing_and_bad_files() {
    let pki = Pki::new();
    let missing = pki.dir.0.join("missing.pem");
    let err = server::tls_acceptor(&missing, &pki.key).err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    let err = server::tls_acceptor(&pki.cert, &missing).err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");

    // No PEM block at all.
    let junk = pki.dir.0.join("junk.pem");
    std::fs::write(&junk, b"not a certificate\n").unwrap();
    let err = server::tls_acceptor(&junk, &pki.key).err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    let err = server::tls_acceptor(&pki.cert, &junk).err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");

    // A key that is not the certificate's.
    let other = Pki::new();
    let err = server::tls_acceptor(&pki.cert, &other.key).err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");

    // The right pair loads.
    server::tls_acceptor(&pki.cert, &pki.key).unwrap();
}

// ---------------------------------------------------------------------------
// curl with the test CA (skipped where curl is not installed)

#[cfg(unix)]
mod curl {
    use super::*;
    use http::curl::{have_curl, run_curl};
    use std::process::Command;

    /// Runs curl against the server with the test CA (plus `-sS --fail`,
    /// and `localhost` resolved to the server's address); its stdout.
    fn curl(pki: &Pki, addr: SocketAddr, args: &[&str]) -> Vec<u8> {
        let resolve = format!("localhost:{}:{}", addr.port(), addr.ip());
        let options = [
            "--resolve".as_ref(),
            resolve.as_ref(),
            "--cacert".as_ref(),
            pki.ca.as_os_str(),
        ];
        run_curl(&options, args)
    }

    #[test]
    fn curl_https_h1_and_h2() {
        if !have_curl() {
            return;
        }
        let pki = Pki::new();
        let addr = start_https_server(&pki);
        let url = format!("https://localhost:{}/", addr.port());
        let echo = format!("https://localhost:{}/echo", addr.port());
        let input = pki.dir.0.join("in");
        let data = pattern(50 << 20, 16);
        std::fs::write(&input, &data).unwrap();
        let upload = format!("@{}", input.display());
        let urls: Vec<&str> = (0..200).map(|_| url.as_str()).collect();

        // ALPN: curl offers h2 and http/1.1 with --http2, only http/1.1
        // with --http1.1; the server takes what is offered.
        for (proto, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
            let out = curl(&pki, addr, &[proto, "-w", "|%{http_version}", &url]);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("Hello, world!\n|{version}"),
                "{proto}"
            );

            // 200 requests on one connection: after each body curl
            // prints how many connections that transfer opened.
            let mut args = vec![proto, "-w", "|%{num_connects}|%{http_version}\\n"];
            args.extend(urls.iter().copied());
            let out = String::from_utf8(curl(&pki, addr, &args)).unwrap();
            let hellos = out.lines().filter(|l| *l == "Hello, world!").count();
            assert_eq!(hellos, 200, "{proto}: {out}");
            let tails: Vec<(u32, &str)> = out
                .lines()
                .filter_map(|l| l.strip_prefix('|'))
                .map(|l| {
                    let (n, v) = l.split_once('|').unwrap();
                    (n.trim().parse().unwrap(), v.trim())
                })
                .collect();
            assert_eq!(tails.len(), 200, "{proto}: {out}");
            assert!(tails.iter().all(|(_, v)| *v == version), "{proto}: {out}");
            let connects: u32 = tails.iter().map(|(n, _)| n).sum();
            assert_eq!(connects, 1, "{proto}: connects per request {tails:?}");

            // A 50 MiB POST echoed back intact.
            let output = pki.dir.0.join("out");
            curl(
                &pki,
                addr,
                &[
                    proto,
                    "-H",
                    "Content-Type: application/octet-stream",
                    "--data-binary",
                    &upload,
                    "-o",
                    output.to_str().unwrap(),
                    &echo,
                ],
            );
            let back = std::fs::read(&output).unwrap();
            assert_eq!(back.len(), data.len(), "{proto}");
            assert!(back == data, "{proto}: the echoed body differs");
            std::fs::remove_file(&output).unwrap();
        }
    }

    #[test]
    fn curl_without_the_ca_refuses_the_server() {
        if !have_curl() {
            return;
        }
        let pki = Pki::new();
        let addr = start_https_server(&pki);
        let resolve = format!("localhost:{}:{}", addr.port(), addr.ip());
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "60", "--resolve", &resolve])
            .arg(format!("https://localhost:{}/", addr.port()))
            .output()
            .expect("run curl");
        // 60: peer certificate cannot be authenticated with known CAs.
        assert_eq!(
            out.status.code(),
            Some(60),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
