//! A TLS echo server on veloq: rustls through the poll-based compatibility
//! layer (`veloq::compat::Compat`, feature `tokio`).
//!
//! ```sh
//! cargo run --release -p veloq --example tls_echo --features tokio -- 127.0.0.1:8443
//! ```
//!
//! The server makes a self-signed certificate for `localhost` at start-up
//! (no private key is stored anywhere) and prints it in PEM, so a client
//! can trust it, e.g.:
//!
//! ```sh
//! openssl s_client -connect 127.0.0.1:8443 -CAfile cert.pem -servername localhost
//! ```

mod server {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::TlsAcceptor;
    use veloq::compat::Compat;
    use veloq::net::TcpListener;

    pub fn main() -> std::io::Result<()> {
        let addr = std::env::args()
            .nth(1)
            .unwrap_or_else(|| "127.0.0.1:8443".into());
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .map_err(std::io::Error::other)?;
        println!("{}", cert.cert.pem());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
        let config = ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert.cert.der().to_vec())], key)
        .map_err(std::io::Error::other)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));

        veloq::block_on(async move {
            let listener = TcpListener::bind(addr.as_str())?;
            eprintln!("TLS echo on {}", listener.local_addr()?);
            loop {
                let (stream, peer) = listener.accept().await?;
                let acceptor = acceptor.clone();
                veloq::spawn(async move {
                    let mut tls = match acceptor.accept(Compat::new(stream)).await {
                        Ok(tls) => tls,
                        Err(e) => return eprintln!("{peer}: handshake failed: {e}"),
                    };
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if tls.write_all(&buf[..n]).await.is_err()
                                    || tls.flush().await.is_err()
                                {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = tls.shutdown().await;
                });
            }
        })
    }
}

fn main() -> std::io::Result<()> {
    server::main()
}
