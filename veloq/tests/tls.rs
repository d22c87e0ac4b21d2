//! rustls client and server, both on veloq, through the poll-based
//! compatibility layer: handshake, a 4 MiB echo in both directions and a
//! clean close. The certificate is made inside the test (rcgen); no private
//! key is stored anywhere.
#![cfg(feature = "tokio")]

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use veloq::compat::Compat;
use veloq::net::{TcpListener, TcpStream};

fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let server = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(der).unwrap();
    let client = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn rustls_echo_between_client_and_server_on_veloq() {
    let (server_cfg, client_cfg) = configs();
    veloq::block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = veloq::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut tls = TlsAcceptor::from(server_cfg)
                .accept(Compat::new(stream))
                .await
                .unwrap();
            let mut buf = vec![0u8; 32 * 1024];
            let mut total = 0;
            loop {
                let n = tls.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                total += n;
                tls.write_all(&buf[..n]).await.unwrap();
            }
            tls.shutdown().await.unwrap();
            total
        });

        let stream = TcpStream::connect(addr).await.unwrap();
        let tls = TlsConnector::from(client_cfg)
            .connect(
                ServerName::try_from("localhost").unwrap(),
                Compat::new(stream),
            )
            .await
            .unwrap();
        let (mut rd, mut wr) = tokio::io::split(tls);
        let data = pattern(4 << 20);
        let expected = data.clone();
        // Write and read at once, so neither side's buffers must hold it all.
        let writer = veloq::spawn(async move {
            wr.write_all(&data).await.unwrap();
            wr.shutdown().await.unwrap();
            wr
        });
        let mut back = Vec::with_capacity(expected.len());
        rd.read_to_end(&mut back).await.unwrap();
        assert!(back == expected, "echoed bytes differ");
        drop(writer.await.unwrap());
        assert_eq!(server.await.unwrap(), expected.len());
    });
}

#[test]
fn a_client_that_does_not_trust_the_server_fails_the_handshake() {
    let (server_cfg, _) = configs();
    let (_, other_client) = configs(); // trusts a different certificate
    veloq::block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = veloq::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            TlsAcceptor::from(server_cfg)
                .accept(Compat::new(stream))
                .await
                .is_err()
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let res = TlsConnector::from(other_client)
            .connect(
                ServerName::try_from("localhost").unwrap(),
                Compat::new(stream),
            )
            .await;
        assert!(
            res.is_err(),
            "handshake with an untrusted certificate succeeded"
        );
        assert!(
            server.await.unwrap(),
            "the server saw the handshake fail too"
        );
    });
}
