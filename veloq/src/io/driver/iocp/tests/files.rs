//! File ops on the IOCP driver: open, positioned reads and writes,
//! flushes, allocation, close, and their errors.

use super::*;

// ---- files ---------------------------------------------------------------------

#[test]
fn file_write_and_read_at_offsets() {
    let mut d = driver();
    let path = temp_path("rw");
    let fd = open(&mut d, &path, rw_flags()).unwrap();

    for (offset, data) in [(0u64, &b"head"[..]), (4096, b"middle"), (1 << 20, b"far")] {
        let w = op::WriteFixed {
            fd,
            buf: data.as_ptr(),
            len: data.len() as u32,
            offset,
            fixed: None,
        };
        let key = submit(&mut d, w).unwrap();
        assert_eq!(run(&mut d, key).res.unwrap(), data.len());
    }
    for (offset, data) in [(4096u64, &b"middle"[..]), (0, b"head"), (1 << 20, b"far")] {
        let mut buf = vec![0u8; data.len()];
        let r = op::ReadFixed {
            fd,
            buf: buf.as_mut_ptr(),
            len: buf.len() as u32,
            offset,
            fixed: None,
        };
        let key = submit(&mut d, r).unwrap();
        assert_eq!(run(&mut d, key).res.unwrap(), data.len());
        assert_eq!(buf, data);
    }
    // The hole between the writes reads as zeros.
    let mut buf = vec![0xffu8; 16];
    let r = op::ReadFixed {
        fd,
        buf: buf.as_mut_ptr(),
        len: 16,
        offset: 100,
        fixed: None,
    };
    let key = submit(&mut d, r).unwrap();
    assert_eq!(run(&mut d, key).res.unwrap(), 16);
    assert_eq!(buf, vec![0u8; 16]);
    // Past the end: a zero-byte read, not an error.
    let r = op::ReadFixed {
        fd,
        buf: buf.as_mut_ptr(),
        len: 16,
        offset: 2 << 20,
        fixed: None,
    };
    let key = submit(&mut d, r).unwrap();
    assert_eq!(run(&mut d, key).res.unwrap(), 0);

    let key = submit(
        &mut d,
        op::Fsync {
            fd,
            data_only: false,
        },
    )
    .unwrap();
    run(&mut d, key).res.unwrap();
    let key = submit(
        &mut d,
        op::SyncFileRange {
            fd,
            offset: 0,
            len: 4096,
        },
    )
    .unwrap();
    run(&mut d, key).res.unwrap();
    let key = submit(
        &mut d,
        op::Fallocate {
            fd,
            offset: 0,
            len: 3 << 20,
        },
    )
    .unwrap();
    run(&mut d, key).res.unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 << 20);
    // Allocating inside the file never shrinks it.
    let key = submit(
        &mut d,
        op::Fallocate {
            fd,
            offset: 0,
            len: 10,
        },
    )
    .unwrap();
    run(&mut d, key).res.unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 << 20);

    let key = submit(&mut d, op::Close { fd }).unwrap();
    run(&mut d, key).res.unwrap();
    assert_eq!(&std::fs::read(&path).unwrap()[4096..4102], b"middle");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn open_errors_map_to_kinds() {
    let mut d = driver();
    let missing = temp_path("missing");
    let flags = OpenFlags {
        read: true,
        ..OpenFlags::default()
    };
    assert_eq!(
        open(&mut d, &missing, flags).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    let in_missing_dir = missing.join("child");
    assert_eq!(
        open(&mut d, &in_missing_dir, flags).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );

    let path = temp_path("exists");
    std::fs::write(&path, b"x").unwrap();
    let create_new = OpenFlags {
        write: true,
        create_new: true,
        ..OpenFlags::default()
    };
    assert_eq!(
        open(&mut d, &path, create_new).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    // Checked before anything is offloaded.
    let none = OpenFlags::default();
    assert_eq!(
        open(&mut d, &path, none).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(d.stats().in_flight, 0);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn opened_then_cancelled_hands_the_handle_to_the_hook() {
    let mut d = driver();
    let path = temp_path("untaken");
    let flags = OpenFlags {
        write: true,
        create: true,
        ..OpenFlags::default()
    };
    let key = submit(
        &mut d,
        op::Open {
            path: path.clone(),
            flags,
        },
    )
    .unwrap();
    drain(&mut d);
    // Completed, never polled: cancelling hands the handle to the hook,
    // and the driver does not close it.
    let (out, hook) = record(());
    d.cancel(key, hook);
    assert!(d.ops.is_empty());
    let handle = out
        .borrow_mut()
        .take()
        .expect("the hook got the output")
        .res
        .unwrap();
    let data = b"through the hook's handle";
    let w = op::WriteFixed {
        fd: handle,
        buf: data.as_ptr(),
        len: data.len() as u32,
        offset: 0,
        fixed: None,
    };
    d.register_handle(handle).unwrap();
    let key = submit(&mut d, w).unwrap();
    assert_eq!(run(&mut d, key).res.unwrap(), data.len());
    let key = submit(&mut d, op::Close { fd: handle }).unwrap();
    run(&mut d, key).res.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), data);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn dropping_the_driver_closes_an_unread_opened_file() {
    let path = temp_path("unread");
    {
        let mut d = driver();
        let flags = OpenFlags {
            write: true,
            create: true,
            ..OpenFlags::default()
        };
        submit(
            &mut d,
            op::Open {
                path: path.clone(),
                flags,
            },
        )
        .unwrap();
        drain(&mut d);
    }
    // The handle was closed: nothing holds the file, so it can be removed
    // and created again with create_new.
    std::fs::remove_file(&path).unwrap();
    let mut d = driver();
    let again = OpenFlags {
        write: true,
        create_new: true,
        ..OpenFlags::default()
    };
    let fd = open(&mut d, &path, again).unwrap();
    let key = submit(&mut d, op::Close { fd }).unwrap();
    run(&mut d, key).res.unwrap();
    std::fs::remove_file(&path).unwrap();
}
