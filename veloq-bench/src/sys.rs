//! Small Linux helpers: CPU pinning, per-process CPU time from
//! `/proc/<pid>/stat`, machine-wide busy time from `/proc/stat`, and a
//! one-line description of the machine for the reports.

use std::io;

/// Pins the calling thread to one CPU. Threads it creates later inherit
/// the mask.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: `set` is a plain bitmask on our stack, zeroed before use;
    // CPU_SET only writes inside it (it checks `cpu` against its size), and
    // sched_setaffinity reads `size_of::<cpu_set_t>()` bytes of it. Pid 0
    // is the calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Clock ticks per second of the `/proc` CPU counters.
pub fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf reads a constant; no memory is passed.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of process `pid` (all its threads), in clock ticks.
pub fn process_cpu_ticks(pid: u32) -> io::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_pid_stat_ticks(&s).ok_or_else(|| io::Error::other("unparsable /proc/<pid>/stat"))
}

/// utime + stime from the text of `/proc/<pid>/stat`. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted from
/// the last `)`: after it come state (3), …, utime (14), stime (15).
pub fn parse_pid_stat_ticks(s: &str) -> Option<u64> {
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// (busy, total) clock ticks of all CPUs since boot, from `/proc/stat`.
pub fn machine_ticks() -> io::Result<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat")?;
    parse_proc_stat(&s).ok_or_else(|| io::Error::other("unparsable /proc/stat"))
}

/// (busy, total) from the `cpu` line of `/proc/stat`: idle and iowait
/// (fields 4 and 5) are not busy; guest time is already inside user time
/// and is left out of the total.
pub fn parse_proc_stat(s: &str) -> Option<(u64, u64)> {
    let line = s.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// "model, N CPUs, kernel X" for the report.
pub fn machine_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU");
    // Not available_parallelism: that honours this thread's CPU pinning.
    // SAFETY: sysconf reads a constant; no memory is passed.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cpus} CPUs, Linux {}", kernel.trim())
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_stat_fields_counted_from_last_paren() {
        let s = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 1 0";
        assert_eq!(parse_pid_stat_ticks(s), Some(287));
        assert_eq!(parse_pid_stat_ticks("garbage"), None);
    }

    #[test]
    fn own_process_stat_parses() {
        assert!(process_cpu_ticks(std::process::id()).is_ok());
        assert!(machine_ticks().unwrap().1 > 0);
    }

    #[test]
    fn proc_stat_busy_excludes_idle_and_iowait() {
        let s = "cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(parse_proc_stat(s), Some((160, 1180)));
        assert_eq!(parse_proc_stat("intr 1 2"), None);
    }
}
