//! The blocking pool (file ops, cancellation while a thread runs one),
//! cross-thread wakes, timers and dropping the driver.

use super::*;
use crate::io::driver::op_registry::{CancelHook, KeepOnly};
use crate::io::op::OpOutput;
use std::cell::RefCell;

#[test]
fn file_ops_run_on_the_pool() {
    let mut d = driver();
    let path = std::env::temp_dir().join(format!("veloq-epoll-{}-file", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let open = submit(
        &mut d,
        op::Open {
            path: path.clone(),
            flags: OpenFlags {
                read: true,
                write: true,
                create: true,
                truncate: true,
                mode: 0o600,
                ..OpenFlags::default()
            },
        },
    );
    let fd = run(&mut d, open).res.unwrap() as RawFd;
    d.register_handle(fd).unwrap();
    let data = b"0123456789";
    let w = submit(
        &mut d,
        op::WriteFixed {
            fd,
            buf: data.as_ptr(),
            len: 10,
            offset: 100,
            fixed: None,
        },
    );
    assert_eq!(run(&mut d, w).res.unwrap(), 10);
    for desc in [
        submit(
            &mut d,
            op::Fsync {
                fd,
                data_only: true,
            },
        ),
        submit(
            &mut d,
            op::SyncFileRange {
                fd,
                offset: 0,
                len: 110,
            },
        ),
        submit(
            &mut d,
            op::Fallocate {
                fd,
                offset: 0,
                len: 4096,
            },
        ),
    ] {
        run(&mut d, desc).res.unwrap();
    }
    let mut buf = vec![0u8; 10];
    let r = submit(
        &mut d,
        op::ReadFixed {
            fd,
            buf: buf.as_mut_ptr(),
            len: 10,
            offset: 100,
            fixed: None,
        },
    );
    assert_eq!(run(&mut d, r).res.unwrap(), 10);
    assert_eq!(&buf, data);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
    let c = submit(&mut d, op::Close { fd });
    run(&mut d, c).res.unwrap();
    assert!(d.pool_threads() >= 1);
    std::fs::remove_file(&path).unwrap();

    let missing = submit(
        &mut d,
        op::Open {
            path,
            flags: OpenFlags {
                read: true,
                ..OpenFlags::default()
            },
        },
    );
    let err = run(&mut d, missing).res.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

/// A cancel hook that keeps the output it is handed.
struct RecordOutput(Rc<RefCell<Option<OpOutput>>>);

impl CancelHook for RecordOutput {
    fn completed(self: Box<Self>, out: OpOutput) {
        *self.0.borrow_mut() = Some(out);
    }
}

#[test]
fn cancelled_pool_op_is_freed_when_the_pool_reports_it() {
    let mut d = driver();
    // Opening a FIFO for reading blocks the pool thread until a writer
    // opens it.
    let path = std::env::temp_dir().join(format!("veloq-epoll-{}-fifo", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c_path` is a live NUL-terminated string.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let key = submit(
        &mut d,
        op::Open {
            path: path.clone(),
            flags: OpenFlags {
                read: true,
                ..OpenFlags::default()
            },
        },
    );
    d.wait(Some(Duration::from_millis(20))).unwrap();
    let keep = Rc::new(RefCell::new(None));
    d.cancel(key, Some(Box::new(RecordOutput(keep.clone()))));
    d.wait(Some(Duration::from_millis(20))).unwrap();
    assert_eq!(Rc::strong_count(&keep), 2, "the pool still runs the op");
    assert_eq!(d.stats().in_flight, 1);

    // A writer lets the open finish; the driver then frees the slot and
    // hands the hook the descriptor nobody else will take.
    let writer = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    let start = Instant::now();
    while Rc::strong_count(&keep) != 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "never freed");
        d.wait(Some(Duration::from_millis(20))).unwrap();
    }
    assert_eq!(d.stats().in_flight, 0);
    let fd = keep.borrow_mut().take().expect("hook ran").res.unwrap();
    // SAFETY: the hook got the descriptor the cancelled open created;
    // nothing else owns it.
    unsafe { libc::close(fd as RawFd) };
    // The reader was closed: writing now finds no reader.
    let mut writer = writer;
    let err = writer.write_all(b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn wake_from_another_thread_ends_a_blocking_wait() {
    let mut d = driver();
    let handle = d.wake_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        handle.unpark();
        handle.unpark(); // coalesced
    });
    let start = Instant::now();
    d.wait(None).unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    t.join().unwrap();
    // Both unparks were consumed by that one wake (or one more turn):
    // a later zero wait does not block and a later wake still works.
    d.wait(Some(Duration::ZERO)).unwrap();
    d.wake_handle().unpark();
    let start = Instant::now();
    d.wait(Some(Duration::from_secs(5))).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "a fresh wake is seen"
    );
}

#[test]
fn wait_returns_at_the_next_timer() {
    let mut d = driver();
    let (count, waker) = counting_waker();
    let at = Instant::now() + Duration::from_millis(30);
    let _key = d.timers().insert(at, &waker);
    let start = Instant::now();
    while count.0.load(Ordering::SeqCst) == 0 {
        d.wait(None).unwrap();
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    assert!(Instant::now() >= at, "never early");
    assert!(d.stats().wait_calls >= 1);
}

#[test]
fn drop_waits_for_pool_ops_and_frees_socket_ops() {
    let mut d = driver();
    let (a, _b) = tcp_pair(&mut d);
    let net_buf = Rc::new(vec![0u8; 8]);
    let key = submit(
        &mut d,
        op::Recv {
            fd: a.as_raw_fd(),
            buf: net_buf.as_ptr().cast_mut(),
            len: 8,
        },
    );
    d.cancel(key, Some(Box::new(KeepOnly(net_buf.clone()))));
    let file_buf = Rc::new(vec![0u8; 8]);
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    let key = submit(
        &mut d,
        op::ReadFixed {
            fd: file.as_raw_fd(),
            buf: file_buf.as_ptr().cast_mut(),
            len: 8,
            offset: 0,
            fixed: None,
        },
    );
    d.cancel(key, Some(Box::new(KeepOnly(file_buf.clone()))));
    let mut waiting = vec![0u8; 8];
    let _pending = submit(&mut d, recv(a.as_raw_fd(), &mut waiting));
    drop(d);
    assert_eq!(Rc::strong_count(&net_buf), 1);
    assert_eq!(Rc::strong_count(&file_buf), 1);
}
