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
