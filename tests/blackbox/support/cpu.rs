//! CPU pinning and CPU time for the benchmarks, read from `/proc`: the
//! server on one core, the load generator on another, and each side's
//! user and system time over the measured window.

use std::time::Duration;

/// User and system CPU time of one or more processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// `self - earlier`, saturating (a process that exited in between).
    pub fn since(&self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

impl std::ops::Add for CpuTime {
    type Output = CpuTime;
    fn add(self, o: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user + o.user,
            system: self.system + o.system,
        }
    }
}

fn ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// `utime` and `stime` of process `pid` (all its threads), or `None` if it
/// is gone.
pub fn of(pid: u32) -> Option<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'. utime and stime are fields 14 and 15 (1-based), i.e.
    // the 12th and 13th after the name.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let user: f64 = f.next()?.parse().ok()?;
    let system: f64 = f.next()?.parse().ok()?;
    let hz = ticks();
    Some(CpuTime {
        user: Duration::from_secs_f64(user / hz),
        system: Duration::from_secs_f64(system / hz),
    })
}

/// The summed CPU time of every process named `comm` (e.g. all of a
/// PostgreSQL server's backends).
pub fn of_all_named(comm: &str) -> CpuTime {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return CpuTime::default();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == comm)
        })
        .filter_map(of)
        .fold(CpuTime::default(), |a, b| a + b)
}

/// Pins every thread of process `pid` to `cpu`; threads it starts later
/// inherit the mask. `false` if the machine has no such core.
pub fn pin(pid: u32, cpu: usize) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET stays within it
    // for cpu < CPU_SETSIZE, checked first.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return false;
    }
    unsafe { libc::CPU_SET(cpu, &mut set) };
    let mut all = true;
    for tid in tasks.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        // SAFETY: `set` is a valid cpu_set_t of the size passed.
        let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(&set), &set) };
        all &= rc == 0;
    }
    all
}

/// How many cores the machine has online (not how many this process may
/// use: once the load generator is pinned, that is one).
pub fn cores() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// CPU time the calling thread has used (not wall time: the load
/// generator's core is busy).
pub fn this_thread() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write to.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}
