//! Helpers shared by the process unit tests on every system (the Linux
//! driver tests in `tests` and the Windows registration test in `wait`).

use super::Child;

/// Spawns `count` children with `spawn(code)`, child `i` told to exit with
/// `i % modulus`, waits for them all at once (one task each) and checks
/// that each wait reports its own child's code.
pub(super) async fn wait_for_many(count: i32, modulus: i32, spawn: impl Fn(i32) -> Child) {
    let mut handles = Vec::new();
    for i in 0..count {
        let mut child = spawn(i % modulus);
        handles.push(crate::spawn(async move {
            (i, child.wait().await.unwrap().code())
        }));
    }
    for h in handles {
        let (i, code) = h.await.unwrap();
        assert_eq!(code, Some(i % modulus));
    }
}
