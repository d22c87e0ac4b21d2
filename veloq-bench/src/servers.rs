//! The echo servers, one per runtime, each written the way that runtime's
//! documentation shows: a single-threaded runtime, an accept loop, one
//! task per connection that reads up to 4 KiB and writes back what it
//! read. TCP_NODELAY on every accepted socket.
//!
//! Each `serve_*` blocks forever; `ready` gets the bound address once the
//! listener is up.

use std::net::SocketAddr;

/// Read buffer size of every server.
const BUF: usize = 4096;

const ADDR: &str = "127.0.0.1:0";

/// Serves echo with `runtime` on the calling thread, forever.
pub fn serve(runtime: &str, ready: impl FnOnce(SocketAddr)) -> Result<(), String> {
    match runtime {
        "veloq" => serve_veloq(ready),
        "tokio" => serve_tokio(ready),
        "monoio" => serve_monoio(ready),
        "compio" => serve_compio(ready),
        other => return Err(format!("no echo server for {other:?}")),
    }
    Ok(())
}

fn serve_veloq(ready: impl FnOnce(SocketAddr)) {
    use veloq::net::TcpListener;
    veloq::block_on(async {
        let listener = TcpListener::bind(ADDR).expect("bind");
        ready(listener.local_addr().expect("local_addr"));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            veloq::spawn(async move {
                let mut buf = Vec::with_capacity(BUF);
                loop {
                    buf.clear();
                    let (res, b) = stream.read(buf).await;
                    buf = b;
                    if !matches!(res, Ok(n) if n > 0) {
                        return;
                    }
                    let (res, b) = stream.write_all(buf).await;
                    buf = b;
                    if res.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

fn serve_tokio(ready: impl FnOnce(SocketAddr)) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(ADDR).await.expect("bind");
        ready(listener.local_addr().expect("local_addr"));
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; BUF];
                loop {
                    let n = match stream.read(&mut buf).await {
                        Ok(n) if n > 0 => n,
                        _ => return,
                    };
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

fn serve_monoio(ready: impl FnOnce(SocketAddr)) {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .build()
        .expect("monoio runtime (io_uring)");
    rt.block_on(async {
        let listener = monoio::net::TcpListener::bind(ADDR).expect("bind");
        ready(listener.local_addr().expect("local_addr"));
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            monoio::spawn(async move {
                let mut buf = Vec::with_capacity(BUF);
                loop {
                    buf.clear();
                    let (res, b) = stream.read(buf).await;
                    buf = b;
                    if !matches!(res, Ok(n) if n > 0) {
                        return;
                    }
                    let (res, b) = stream.write_all(buf).await;
                    buf = b;
                    if res.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

fn serve_compio(ready: impl FnOnce(SocketAddr)) {
    use compio::io::{AsyncRead, AsyncWriteExt};
    let rt = compio::runtime::Runtime::new().expect("compio runtime");
    rt.block_on(async {
        let listener = compio::net::TcpListener::bind(ADDR).await.expect("bind");
        ready(listener.local_addr().expect("local_addr"));
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            compio::runtime::spawn(async move {
                let mut buf = Vec::with_capacity(BUF);
                loop {
                    buf.clear();
                    let compio::BufResult(res, b) = stream.read(buf).await;
                    buf = b;
                    if !matches!(res, Ok(n) if n > 0) {
                        return;
                    }
                    let compio::BufResult(res, b) = stream.write_all(buf).await;
                    buf = b;
                    if res.is_err() {
                        return;
                    }
                }
            })
            .detach();
        }
    })
}
