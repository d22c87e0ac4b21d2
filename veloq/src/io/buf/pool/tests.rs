//! `BufPool` / `FixedBuf` behaviour on a real runtime.

use std::time::Duration;

use super::*;
use crate::buf::IoBuf;
use crate::fs::OpenOptions;
use crate::net::{TcpListener, TcpStream};

/// The registered index of the first buffer a fresh pool of `count` lends
/// (pools lend buffer 0 first), or `None` where registration is refused.
fn first_index_of_new_pool(count: usize) -> Option<u16> {
    let pool = BufPool::new(count, 4096).unwrap();
    let buf = pool.get().unwrap();
    buf.fixed_index()
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("veloq-pool-{}-{name}", std::process::id()))
}

#[test]
fn lends_until_empty_and_takes_back() {
    crate::block_on(async {
        let pool = BufPool::new(3, 64).unwrap();
        assert_eq!(
            (pool.count(), pool.buf_size(), pool.available()),
            (3, 64, 3)
        );
        let a = pool.get().unwrap();
        let b = pool.get().unwrap();
        let c = pool.get().unwrap();
        assert!(pool.get().is_none(), "all three lent");
        assert_eq!(pool.available(), 0);
        let (pa, pb, pc) = (a.stable_ptr(), b.stable_ptr(), c.stable_ptr());
        assert!(pa != pb && pb != pc && pa != pc, "distinct buffers");
        assert_eq!(pb as usize - pa as usize, 64, "consecutive in one region");
        drop(b);
        assert_eq!(pool.available(), 1);
        let again = pool.get().unwrap();
        assert_eq!(again.stable_ptr(), pb, "the returned buffer is lent again");
        assert!(again.is_empty(), "lent empty");
    });
}

#[test]
fn fixed_buf_holds_bytes_like_a_vec() {
    crate::block_on(async {
        let pool = BufPool::new(1, 16).unwrap();
        let mut buf = pool.get().unwrap();
        assert_eq!((buf.len(), buf.capacity()), (0, 16));
        buf.extend_from_slice(b"hello");
        buf.extend_from_slice(b", you");
        assert_eq!(&buf[..], b"hello, you");
        buf[0] = b'j';
        assert_eq!(buf.as_slice(), b"jello, you");
        buf.truncate(5);
        assert_eq!(&*buf, b"jello");
        buf.copy_from_slice(b"0123456789abcdef");
        assert_eq!(buf.len(), 16);
        buf.clear();
        assert!(buf.is_empty());
        assert_eq!(buf.bytes_total(), 16);
    });
}

#[test]
#[should_panic(expected = "exceed the capacity")]
fn extending_past_capacity_panics() {
    crate::block_on(async {
        let pool = BufPool::new(1, 4).unwrap();
        let mut buf = pool.get().unwrap();
        buf.extend_from_slice(b"too long");
    });
}

#[test]
fn zero_sized_pools_are_refused() {
    crate::block_on(async {
        let err = BufPool::new(0, 4096).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = BufPool::new(4, 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
#[should_panic(expected = "no runtime")]
fn a_pool_needs_a_runtime() {
    let _ = BufPool::new(1, 64);
}

#[test]
fn file_io_through_registered_buffers() {
    crate::block_on(async {
        let pool = BufPool::new(2, 4096).unwrap();
        if !pool.is_registered() {
            eprintln!("note: buffers not registered here; testing the plain-memory path");
        }
        let path = temp_path("rw");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .unwrap();
        let mut w = pool.get().unwrap();
        assert_eq!(w.fixed_index().is_some(), pool.is_registered());
        w.extend_from_slice(b"fixed buffer bytes");
        let (res, w) = file.write_all_at(w, 10).await;
        res.unwrap();
        assert_eq!(w.len(), 18, "handed back with its data");

        let r = pool.get().unwrap();
        let (res, r) = file.read_at(r, 0).await;
        assert_eq!(res.unwrap(), 28);
        assert_eq!(&r[..10], &[0u8; 10]);
        assert_eq!(&r[10..], b"fixed buffer bytes");
        drop((w, r));
        assert_eq!(pool.available(), 2);
        file.close().await.unwrap();
        std::fs::remove_file(&path).unwrap();
    });
}

#[test]
fn memory_outlives_the_pool_handle_and_is_unregistered_last() {
    crate::block_on(async {
        let pool = BufPool::new(4, 4096).unwrap();
        if !pool.is_registered() {
            eprintln!("skipped: buffer registration unavailable");
            return;
        }
        let mut buf = pool.get().unwrap();
        let first = buf.fixed_index().unwrap();
        drop(pool);
        // Still usable for I/O with its registered index.
        let path = temp_path("outlive");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .unwrap();
        buf.extend_from_slice(b"still here");
        let (res, buf) = file.write_all_at(buf, 0).await;
        res.unwrap();
        // While the buffer lives its range stays taken...
        assert_ne!(first_index_of_new_pool(4), Some(first));
        drop(buf);
        // ...and once it is gone the range is unregistered and reused.
        assert_eq!(first_index_of_new_pool(4), Some(first));
        std::fs::remove_file(&path).unwrap();
    });
}

#[test]
fn a_cancelled_read_that_holds_the_last_buffer_releases_the_pool() {
    crate::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (_server, _) = listener.accept().await.unwrap();

        let pool = BufPool::new(2, 4096).unwrap();
        let registered = pool.is_registered();
        let buf = pool.get().unwrap();
        let first = buf.fixed_index();
        // Nothing is ever sent: the read is cancelled by the timeout and the
        // driver keeps the buffer until the kernel reports the cancel.
        let res = crate::time::timeout(Duration::from_millis(20), client.read(buf)).await;
        assert!(res.is_err(), "the read must time out");
        drop(pool);
        // The cancel's completion drops the last owner inside the driver.
        crate::time::sleep(Duration::from_millis(20)).await;
        if registered {
            assert_eq!(first_index_of_new_pool(2), first, "range released");
        }
    });
}

#[allow(dead_code)]
trait AmbiguousIfSend<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
#[allow(dead_code)]
struct Invalid;
impl<T: ?Sized + Send> AmbiguousIfSend<Invalid> for T {}

#[test]
fn pool_and_buffers_stay_on_their_thread() {
    // Fails to compile ("type annotations needed") if either were `Send`.
    let _ = <FixedBuf as AmbiguousIfSend<_>>::some_item;
    let _ = <BufPool as AmbiguousIfSend<_>>::some_item;
}
