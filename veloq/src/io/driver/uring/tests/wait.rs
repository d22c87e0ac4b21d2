//! Waiting: cross-thread wakes, deadlines (EXT_ARG and the TIMEOUT
//! fallback), non-blocking turns, setup levels, counters.

use super::*;

#[test]
fn wake_from_another_thread_unblocks_wait() {
    let mut d = driver();
    let handle = d.wake_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        handle.unpark();
    });
    let start = Instant::now();
    d.wait(None).unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    t.join().unwrap();
    // The wake read was re-armed: a second wake works too.
    let handle = d.wake_handle();
    let t = std::thread::spawn(move || handle.unpark());
    d.wait(None).unwrap();
    t.join().unwrap();
}

#[test]
fn wakes_coalesce() {
    let mut d = driver();
    let handle = d.wake_handle();
    let before = d.stats().completions;
    for _ in 0..10 {
        handle.unpark();
    }
    d.wait(None).unwrap();
    assert_eq!(d.stats().completions - before, 1, "ten unparks, one wake");
    // Nothing is pending any more: a bounded wait runs to its timeout.
    let start = Instant::now();
    d.wait(Some(Duration::from_millis(40))).unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(35),
        "no stale wake left"
    );
}

#[test]
fn timer_deadline_bounds_wait() {
    let mut d = driver();
    let (count, waker) = counting_waker();
    let start = Instant::now();
    d.timers().insert(start + Duration::from_millis(30), &waker);
    d.wait(None).unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(30),
        "woke early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(2), "woke late: {waited:?}");
    assert_eq!(count.0.load(Ordering::SeqCst), 1, "timer fired");
    assert_eq!(d.timers().len(), 0);
}

#[test]
fn earlier_deadline_replaces_armed_timeout() {
    let mut d = driver();
    // Arm a long timeout first (a wait that a wake cuts short)...
    d.wake_handle().unpark();
    d.wait(Some(Duration::from_secs(30))).unwrap();
    // ...then a much earlier one must still bound the next wait.
    let start = Instant::now();
    d.wait(Some(Duration::from_millis(20))).unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(15),
        "woke early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(2),
        "old timeout was used: {waited:?}"
    );
}

#[test]
fn zero_timeout_never_blocks() {
    let mut d = driver();
    let start = Instant::now();
    for _ in 0..100 {
        d.wait(Some(Duration::ZERO)).unwrap();
    }
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(d.stats().wait_calls, 0, "no blocking enter");
}

#[test]
fn timeout_op_fallback_bounds_waits() {
    let mut d = driver();
    d.use_timeout_op();
    let (count, waker) = counting_waker();
    let start = Instant::now();
    d.timers().insert(start + Duration::from_millis(30), &waker);
    d.wait(None).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    // An armed long timeout is replaced by an earlier one; the removal's
    // CQEs must not end the wait early.
    d.wake_handle().unpark();
    d.wait(Some(Duration::from_secs(30))).unwrap();
    let start = Instant::now();
    d.wait(Some(Duration::from_millis(20))).unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(15),
        "woke early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(2),
        "old timeout was used: {waited:?}"
    );
}

#[test]
fn every_setup_level_works() {
    for level in SetupLevel::ALL {
        let mut d = UringDriver::with_level(&DriverConfig::default(), level).unwrap();
        assert!(d.setup_level() <= level);
        if d.setup_level() != level {
            eprintln!("kernel refused {level:?}, runs {:?}", d.setup_level());
        }
        let f = TempFile::new("level");
        let data = b"level".to_vec();
        let key = submit(&mut d, write_at(f.fd(), &data, 0, None));
        assert_eq!(run(&mut d, key).res.unwrap(), 5, "{level:?}");
        let handle = d.wake_handle();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            handle.unpark();
        });
        d.wait(None).unwrap();
        t.join().unwrap();
        let start = Instant::now();
        d.wait(Some(Duration::from_millis(20))).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(15), "{level:?}");
    }
}

#[test]
fn stats_count_completions_and_waits() {
    let mut d = driver();
    let f = TempFile::new("stats");
    let data = vec![0u8; 4];
    let before = d.stats();
    let key = submit(&mut d, write_at(f.fd(), &data, 0, None));
    assert_eq!(d.stats().in_flight, 1);
    d.wait(None).unwrap();
    let after = d.stats();
    assert_eq!(after.wait_calls, before.wait_calls + 1);
    assert!(after.completions > before.completions);
    assert_eq!(after.in_flight, 0);
    run(&mut d, key).res.unwrap();
}
