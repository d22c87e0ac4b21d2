//! Ops the kernel reports pending that are already done when `submit`
//! looks (see "Pending, but already done" in the `iocp` module docs):
//! their output comes at once, their op memory stays until their packet,
//! and at most `EARLY_BUDGET` of them finish that way per turn.
//!
//! Wine 8 reports every overlapped read of a regular file that way, so
//! under Wine the counts are exact; on Windows a cached read usually
//! completes through skip-on-success instead, and the tests check only
//! what holds on both.

use std::ffi::{c_char, c_void};

use super::*;
use crate::io::driver::iocp::EARLY_BUDGET;

#[link(name = "kernel32")]
extern "system" {
    fn GetModuleHandleA(name: *const c_char) -> *mut c_void;
    fn GetProcAddress(module: *mut c_void, name: *const c_char) -> *mut c_void;
}

/// Whether this runs under Wine (ntdll exports `wine_get_version`).
fn under_wine() -> bool {
    // SAFETY: both names are NUL-terminated literals; ntdll is mapped for
    // the whole life of the process. Only the address is looked at.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr());
        !ntdll.is_null() && !GetProcAddress(ntdll, c"wine_get_version".as_ptr()).is_null()
    }
}

/// A registered file of `len` bytes, byte `i` being `i as u8`.
fn patterned_file(d: &mut IocpDriver, name: &str, len: usize) -> (RawFd, std::path::PathBuf) {
    let path = temp_path(name);
    let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let flags = OpenFlags {
        read: true,
        ..OpenFlags::default()
    };
    (open(d, &path, flags).unwrap(), path)
}

fn read_desc(fd: RawFd, buf: &mut [u8], offset: u64) -> op::ReadFixed {
    op::ReadFixed {
        fd,
        buf: buf.as_mut_ptr(),
        len: buf.len() as u32,
        offset,
        fixed: None,
    }
}

/// Polls `key` once.
fn poll_once(d: &mut IocpDriver, key: OpKey) -> Poll<OpOutput> {
    let (_, waker) = counting_waker();
    d.poll_op(key, &mut Context::from_waker(&waker))
}

#[test]
fn reads_done_at_submit_hand_out_their_bytes_and_free_their_op_on_the_packet() {
    let mut d = driver();
    let (fd, path) = patterned_file(&mut d, "early", 4 * 4096);
    let mut bufs = vec![vec![0u8; 4096]; 4];
    let keys: Vec<OpKey> = bufs
        .iter_mut()
        .enumerate()
        .map(|(i, b)| submit(&mut d, read_desc(fd, b, (i * 4096) as u64)).unwrap())
        .collect();
    let early = d.early_completions();
    if under_wine() {
        // Wine: pending, already done, a packet queued for each.
        assert_eq!(early, 4);
        assert_eq!(d.finished.len(), 4);
        assert_eq!(d.stats().in_flight, 4);
    }
    // A read finished at submit (early or skip-on-success) is ready
    // without a wait; the others come through `run`.
    for (i, key) in keys.into_iter().enumerate() {
        let out = match poll_once(&mut d, key) {
            Poll::Ready(out) => out,
            Poll::Pending => run(&mut d, key),
        };
        assert_eq!(out.res.unwrap(), 4096);
        assert!(bufs[i]
            .iter()
            .enumerate()
            .all(|(j, &b)| b == (i * 4096 + j) as u8));
    }
    // Every op's packet still comes, and frees what finished early.
    drain(&mut d);
    assert!(d.finished.is_empty());
    assert_eq!(d.stats().in_flight, 0);
    assert_eq!(d.stats().stale_completions, 0);
    assert!(d.stats().completions >= early);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn at_most_the_budget_finishes_early_per_turn() {
    let mut d = driver();
    let (fd, path) = patterned_file(&mut d, "budget", 512);
    let n = EARLY_BUDGET + 8;
    let mut bufs = vec![vec![0u8; 16]; n];
    let keys: Vec<OpKey> = bufs
        .iter_mut()
        .enumerate()
        .map(|(i, b)| submit(&mut d, read_desc(fd, b, (i % 32 * 16) as u64)).unwrap())
        .collect();
    assert!(d.early_completions() <= EARLY_BUDGET as u64);
    if under_wine() {
        assert_eq!(d.early_completions(), EARLY_BUDGET as u64);
        // The rest wait for their packets as before.
        assert_eq!(d.stats().in_flight, n);
    }
    for (i, key) in keys.into_iter().enumerate() {
        assert_eq!(run(&mut d, key).res.unwrap(), 16);
        let start = i % 32 * 16;
        assert!(bufs[i]
            .iter()
            .enumerate()
            .all(|(j, &b)| b == (start + j) as u8));
    }
    drain(&mut d);
    assert!(d.finished.is_empty());
    // A turn resets the budget.
    let before = d.early_completions();
    let mut one = vec![0u8; 16];
    let key = submit(&mut d, read_desc(fd, &mut one, 0)).unwrap();
    if under_wine() {
        assert_eq!(d.early_completions(), before + 1);
    }
    assert_eq!(run(&mut d, key).res.unwrap(), 16);
    drain(&mut d);
    assert_eq!(d.stats().stale_completions, 0);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn cancelled_after_finishing_early_hands_the_bytes_to_the_hook() {
    let mut d = driver();
    let (fd, path) = patterned_file(&mut d, "early-cancel", 64);
    let mut buf = vec![0u8; 64];
    let key = submit(&mut d, read_desc(fd, &mut buf, 0)).unwrap();
    let (out, hook) = record(());
    d.cancel(key, hook);
    drain(&mut d);
    let out = out.borrow_mut().take().expect("the hook got the output");
    assert_eq!(out.res.unwrap(), 64);
    assert!(buf.iter().enumerate().all(|(j, &b)| b == j as u8));
    assert!(d.finished.is_empty());
    assert_eq!(d.stats().stale_completions, 0);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn dropping_the_driver_reaps_the_packets_of_early_finished_ops() {
    let leaks = crate::io::driver::leaked_drains();
    let mut buf = vec![0u8; 256];
    let path = {
        let mut d = driver();
        let (fd, path) = patterned_file(&mut d, "early-drop", 256);
        let key = submit(&mut d, read_desc(fd, &mut buf, 0)).unwrap();
        if under_wine() {
            // Finished, its packet not yet dequeued.
            assert_eq!(d.finished.len(), 1);
        }
        let ready = matches!(poll_once(&mut d, key), Poll::Ready(_));
        if under_wine() {
            assert!(ready);
        }
        path
    };
    assert_eq!(crate::io::driver::leaked_drains(), leaks);
    let _ = std::fs::remove_file(&path);
}
