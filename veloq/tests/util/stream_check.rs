//! The byte-stream checks of the cancellation torture tests: a reader's
//! stream must follow the `stream_byte` pattern with no gap, and a writer's
//! stream must be, write by write, what each write may have sent (all of a
//! resolved write's reported bytes, any prefix of a cancelled one's,
//! nothing of a never-polled one's), in order.

use std::collections::BTreeSet;

use super::stream_byte;

/// Checks `bytes` against the `stream_byte` pattern from `*off`, advancing it.
pub fn check_stream(bytes: &[u8], off: &mut u64) {
    for &b in bytes {
        assert_eq!(
            b,
            stream_byte(*off),
            "byte {} of the stream is wrong: bytes were lost or reordered",
            *off
        );
        *off += 1;
    }
}

/// Byte `i` of write number `j` in the send torture: `0xFF` starts each
/// write, and no other byte is `0xFF`, so the reader can split the stream
/// into the writes' prefixes.
pub fn send_byte(j: u64, i: u64) -> u8 {
    if i == 0 {
        0xFF
    } else {
        stream_byte((j << 24) | i) % 255
    }
}

/// What became of one write in the send torture.
#[derive(Debug, Clone, Copy)]
pub enum Sent {
    /// Resolved: exactly this many bytes went.
    Done(usize),
    /// Dropped after a poll: some prefix of its `len` bytes may have gone.
    Cancelled(usize),
    /// Never polled: nothing went.
    Never,
}

/// Checks that `got` is, write by write, the prefixes `sent` allows: a
/// resolved write's exact byte count, a cancelled write's any prefix
/// (none included), a never-polled write nothing; in order, no gap.
pub fn check_sent(got: &[u8], sent: &[Sent]) {
    // Split at the 0xFF that starts every write's bytes.
    assert!(
        got.is_empty() || got[0] == 0xFF,
        "the stream does not start with a write's first byte"
    );
    let mut segs: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    for i in 1..=got.len() {
        if i == got.len() || got[i] == 0xFF {
            segs.push(&got[start..i]);
            start = i;
        }
    }
    if got.is_empty() {
        segs.clear();
    }
    let is_prefix = |j: usize, seg: &[u8]| {
        seg.iter()
            .enumerate()
            .all(|(i, &b)| b == send_byte(j as u64, i as u64))
    };
    // Which segment each write may start at (a cancelled write that sent
    // one byte looks like one that sent none: track every possibility).
    let mut at: BTreeSet<usize> = BTreeSet::from([0]);
    for (j, s) in sent.iter().enumerate() {
        let mut next = BTreeSet::new();
        for &k in &at {
            let seg = segs.get(k).copied();
            match *s {
                Sent::Never => {
                    next.insert(k);
                }
                Sent::Done(0) => {
                    next.insert(k);
                }
                Sent::Done(n) => {
                    if seg.is_some_and(|g| g.len() == n && is_prefix(j, g)) {
                        next.insert(k + 1);
                    }
                }
                Sent::Cancelled(len) => {
                    next.insert(k);
                    if seg.is_some_and(|g| g.len() <= len && is_prefix(j, g)) {
                        next.insert(k + 1);
                    }
                }
            }
        }
        assert!(
            !next.is_empty(),
            "write {j} ({s:?}) does not match the bytes received at segment(s) {at:?} of {}: \
             bytes were lost, reordered or sent by a write that never ran",
            segs.len()
        );
        at = next;
    }
    assert!(
        at.contains(&segs.len()),
        "bytes received after the last write's (segments {at:?} of {}): bytes were lost, \
         reordered or sent by a write that never ran",
        segs.len()
    );
}
