//! How reads fill owned buffers (the rule documented on `IoBufMut`), for
//! every read method, and buffer slices for partial writes and appends.

mod util;

use veloq::buf::IoBuf;
use veloq::fs::File;
use veloq::net::UdpSocket;

/// Checks one read method against the three buffer shapes: `read(buf)`
/// must have been given `b"abc"` to read each time.
async fn check_fill_rules<F, Fut>(mut read: F)
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = (std::io::Result<usize>, Vec<u8>)>,
{
    // A zeroed Vec: written from the start, the length stays.
    let (res, buf) = read(vec![9u8; 8]).await;
    assert_eq!(res.unwrap(), 3);
    assert_eq!(buf, b"abc\x09\x09\x09\x09\x09", "len unchanged, tail kept");

    // Capacity only: the length becomes what was read.
    let (res, buf) = read(Vec::with_capacity(8)).await;
    assert_eq!(res.unwrap(), 3);
    assert_eq!(buf, b"abc");

    // An empty Vec reads nothing.
    let (res, buf) = read(Vec::new()).await;
    assert_eq!(res.unwrap(), 0);
    assert!(buf.is_empty());
}

#[test]
fn tcp_read_follows_the_fill_rules() {
    veloq::block_on(async {
        let (client, server) = util::tcp_pair().await;
        let server = std::rc::Rc::new(server);
        check_fill_rules(|buf| {
            let (client, server) = (&client, server.clone());
            async move {
                if buf.capacity() > 0 {
                    let (res, _) = client.write_all(b"abc".to_vec()).await;
                    res.unwrap();
                }
                server.read(buf).await
            }
        })
        .await;
    });
}

#[test]
fn tcp_read_exact_fills_the_capacity() {
    veloq::block_on(async {
        let (client, server) = util::tcp_pair().await;
        let (res, _) = client.write_all(b"0123456789".to_vec()).await;
        res.unwrap();
        let (res, buf) = server.read_exact(vec![0u8; 4]).await;
        res.unwrap();
        assert_eq!(buf, b"0123");
        let (res, buf) = server.read_exact(Vec::with_capacity(6)).await;
        res.unwrap();
        assert_eq!(buf, b"456789");
        let (res, buf) = server.read_exact(Vec::new()).await;
        res.unwrap();
        assert!(buf.is_empty());
    });
}

#[test]
fn udp_recv_and_recv_from_follow_the_fill_rules() {
    veloq::block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b_addr = b.local_addr().unwrap();
        let a_addr = a.local_addr().unwrap();
        b.connect(a_addr).await.unwrap();
        check_fill_rules(|buf| {
            let (a, b) = (&a, &b);
            async move {
                if buf.capacity() == 0 {
                    // A zero-length datagram: nothing to read, but a real one.
                    let (res, _) = a.send_to(Vec::new(), b_addr).await;
                    res.unwrap();
                } else {
                    let (res, _) = a.send_to(b"abc".to_vec(), b_addr).await;
                    res.unwrap();
                }
                let (res, buf) = b.recv_from(buf).await;
                (
                    res.map(|(n, from)| {
                        assert_eq!(from, a_addr);
                        n
                    }),
                    buf,
                )
            }
        })
        .await;
        check_fill_rules(|buf| {
            let (a, b) = (&a, &b);
            async move {
                let payload = if buf.capacity() == 0 {
                    Vec::new()
                } else {
                    b"abc".to_vec()
                };
                let (res, _) = a.send_to(payload, b_addr).await;
                res.unwrap();
                b.recv(buf).await
            }
        })
        .await;
    });
}

#[test]
fn file_read_at_and_read_exact_at_follow_the_fill_rules() {
    let tmp = util::TempPath::new("buf-fill");
    let path = tmp.0.clone();
    std::fs::write(&path, b"abc").unwrap();
    veloq::block_on(async {
        let file = File::open(&path).await.unwrap();
        check_fill_rules(|buf| file.read_at(buf, 0)).await;
        let (res, buf) = file.read_exact_at(Vec::with_capacity(2), 1).await;
        res.unwrap();
        assert_eq!(buf, b"bc");
        let (res, buf) = file.read_exact_at(vec![0u8; 4], 0).await;
        assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(&buf[..3], b"abc");
        file.close().await.unwrap();
    });
}

#[test]
fn slices_append_reads_and_resume_writes_without_copies() {
    veloq::block_on(async {
        let (client, server) = util::tcp_pair().await;
        let (res, _) = client.write_all(b"hello world".to_vec()).await;
        res.unwrap();
        // Read into the tail of a buffer that already holds bytes.
        let mut buf = Vec::with_capacity(32);
        buf.extend_from_slice(b">> ");
        let mut got = 0;
        while got < 11 {
            let len = buf.len();
            let (res, slice) = server.read(buf.slice(len..32)).await;
            got += res.unwrap();
            buf = slice.into_inner();
        }
        assert_eq!(buf, b">> hello world");
        // Write the rest of a buffer after a (simulated) partial write.
        let (res, slice) = server.write_all(buf.slice(3..)).await;
        res.unwrap();
        assert_eq!(
            slice.into_inner(),
            b">> hello world",
            "the whole buffer comes back"
        );
        let (res, echoed) = client.read_exact(Vec::with_capacity(11)).await;
        res.unwrap();
        assert_eq!(echoed, b"hello world");
    });
}
