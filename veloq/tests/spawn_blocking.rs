//! `veloq::task::spawn_blocking`: results, panics and concurrency.

use std::time::{Duration, Instant};

#[test]
fn returns_the_closure_result() {
    veloq::block_on(async {
        let v = veloq::task::spawn_blocking(|| vec![1u8, 2, 3])
            .await
            .unwrap();
        assert_eq!(v, [1, 2, 3]);
    });
}

#[test]
fn a_panic_becomes_a_join_error_and_the_pool_lives_on() {
    veloq::block_on(async {
        let err = veloq::task::spawn_blocking(|| -> u32 { panic!("boom in the pool") })
            .await
            .unwrap_err();
        assert!(err.is_panic(), "{err:?}");
        // The pool still runs work after a panicking job.
        for i in 0..20u32 {
            assert_eq!(
                veloq::task::spawn_blocking(move || i * 2).await.unwrap(),
                i * 2
            );
        }
    });
}

#[test]
fn blocking_jobs_run_concurrently_and_do_not_block_the_worker() {
    veloq::block_on(async {
        let started = Instant::now();
        let handles: Vec<_> = (0..32)
            .map(|_| veloq::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(200))))
            .collect();
        // The worker keeps running timers meanwhile.
        veloq::time::sleep(Duration::from_millis(20)).await;
        assert!(
            started.elapsed() < Duration::from_millis(190),
            "the worker was blocked"
        );
        for h in handles {
            h.await.unwrap();
        }
        // 32 × 200 ms in sequence would be 6.4 s.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    });
}

#[test]
#[should_panic(expected = "no runtime")]
fn outside_a_runtime_panics() {
    drop(veloq::task::spawn_blocking(|| 1));
}
