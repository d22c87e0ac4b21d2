//! `read_vectored` / `write_vectored` on streams: buffers filled and sent in
//! order, handed back in order, with partial transfers reported by count.

mod util;

#[test]
fn vectored_writes_and_reads_keep_order() {
    veloq::block_on(async {
        let (client, server) = util::tcp_pair().await;
        let mut bufs = vec![b"ab".to_vec(), Vec::new(), b"cde".to_vec(), b"f".to_vec()];
        let total: usize = bufs.iter().map(Vec::len).sum();
        let mut sent = 0;
        while sent < total {
            let (res, back) = client.write_vectored(bufs).await;
            let n = res.unwrap();
            assert!(n > 0);
            sent += n;
            // Drop what was sent from the front, keeping the rest in order.
            bufs = back;
            let mut left = n;
            for b in bufs.iter_mut() {
                let k = left.min(b.len());
                b.drain(..k);
                left -= k;
            }
        }
        assert_eq!(sent, 6);

        let mut got = Vec::new();
        let mut bufs = vec![
            Vec::with_capacity(2),
            Vec::with_capacity(0),
            Vec::with_capacity(8),
        ];
        while got.len() < 6 {
            let (res, back) = server.read_vectored(bufs).await;
            let n = res.unwrap();
            assert!(n > 0, "early end of stream");
            assert_eq!(back.len(), 3, "all buffers come back");
            let mut seen = 0;
            for b in &back {
                got.extend_from_slice(b);
                seen += b.len();
            }
            assert_eq!(seen, n);
            bufs = back
                .into_iter()
                .map(|mut b| {
                    b.clear();
                    b
                })
                .collect();
        }
        assert_eq!(got, b"abcdef");

        // No room and nothing to send: zero, without waiting.
        let (res, _) = server.read_vectored(vec![Vec::<u8>::new()]).await;
        assert_eq!(res.unwrap(), 0);
        let (res, _) = client.write_vectored(Vec::<Vec<u8>>::new()).await;
        assert_eq!(res.unwrap(), 0);
    });
}

/// On Unix one vectored call moves data across all its buffers at once.
#[cfg(unix)]
#[test]
fn one_vectored_call_spans_several_buffers() {
    veloq::block_on(async {
        let (client, server) = util::tcp_pair().await;
        let bufs = vec![b"abc".to_vec(), b"defg".to_vec(), b"hi".to_vec()];
        let (res, back) = client.write_vectored(bufs).await;
        assert_eq!(res.unwrap(), 9, "one sendmsg sends all three");
        assert_eq!(back[1], b"defg");
        // Let all nine bytes arrive, then take them in one call.
        veloq::time::sleep(std::time::Duration::from_millis(20)).await;
        let bufs = vec![
            Vec::with_capacity(2),
            Vec::with_capacity(4),
            Vec::with_capacity(16),
        ];
        let (res, back) = server.read_vectored(bufs).await;
        assert_eq!(res.unwrap(), 9);
        assert_eq!(back[0], b"ab");
        assert_eq!(back[1], b"cdef");
        assert_eq!(back[2], b"ghi");
    });
}

/// A vectored read dropped after it received hands its bytes on.
#[cfg(unix)]
#[test]
fn a_dropped_vectored_read_loses_nothing() {
    use std::future::Future;
    veloq::block_on(async {
        let (client, server) = util::tcp_pair().await;
        let mut read =
            Box::pin(server.read_vectored(vec![Vec::with_capacity(2), Vec::with_capacity(8)]));
        std::future::poll_fn(|cx| {
            assert!(read.as_mut().poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
        let (res, _) = client.write_all(b"hello".to_vec()).await;
        res.unwrap();
        veloq::time::sleep(std::time::Duration::from_millis(20)).await;
        drop(read);
        let (res, got) = server.read_exact(Vec::with_capacity(5)).await;
        res.unwrap();
        assert_eq!(got, b"hello");
    });
}

/// Descriptors passed over a Unix stream with `SCM_RIGHTS`.
#[cfg(unix)]
#[test]
fn unix_stream_passes_descriptors() {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;
    veloq::block_on(async {
        let (a, b) = veloq::net::UnixStream::pair().unwrap();
        let tmp = util::TempPath::new("scm-rights");
        let mut file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp.0)
            .unwrap();
        file.write_all(b"passed along").unwrap();
        let (r1, w1) = std::io::pipe().unwrap();
        let (res, _) = a
            .send_msg(vec![b"two fds".to_vec()], &[file.as_fd(), w1.as_fd()])
            .await;
        assert_eq!(res.unwrap(), 7);
        // The sender's copies may go at once: the kernel got duplicates.
        drop(w1);
        let (res, bufs) = b.recv_msg(vec![Vec::with_capacity(16)], 4).await;
        let (n, fds) = res.unwrap();
        assert_eq!(n, 7);
        assert_eq!(bufs[0], b"two fds");
        assert_eq!(fds.len(), 2);
        let mut fds = fds.into_iter();
        // The same open file: its offset is shared.
        let mut got = std::fs::File::from(fds.next().unwrap());
        got.rewind().unwrap();
        let mut text = String::new();
        got.read_to_string(&mut text).unwrap();
        assert_eq!(text, "passed along");
        // The pipe's write end works in the receiver.
        let mut w2 = std::fs::File::from(fds.next().unwrap());
        w2.write_all(b"x").unwrap();
        drop(w2);
        let mut out = Vec::new();
        let mut r1 = r1;
        r1.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"x");
        // Without descriptors, recv_msg returns none.
        let (res, _) = a.send_msg(vec![b"plain".to_vec()], &[]).await;
        res.unwrap();
        let (res, _) = b.recv_msg(vec![Vec::with_capacity(8)], 4).await;
        let (n, fds) = res.unwrap();
        assert_eq!((n, fds.len()), (5, 0));
    });
}
