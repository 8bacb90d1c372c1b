//! CPU time and memory of a process from Linux's `/proc` (proc(5)), read the same way as
//! host-chat's `host/src/bench/process.rs` (kept apart: this crate does not link
//! host-chat).

use std::time::Duration;

/// Ticks per second of `utime`/`stime` (`USER_HZ`, fixed at 100 by the kernel's ABI).
const USER_HZ: u64 = 100;

/// `utime + stime` of `pid` (every thread), or of this process when `None`; 10 ms steps.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let text = std::fs::read_to_string(path(pid, "stat")).ok()?;
    let rest = text.get(text.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// `VmRSS` and `VmHWM` of `pid`, KiB.
pub fn memory_kib(pid: Option<u32>) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(path(pid, "status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.get(name.len()..)?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

/// Raises the soft open-files limit to `need` (and the hard one where allowed), for one
/// TCP connection per client; the broker started afterwards inherits it.
pub fn raise_open_files(need: u64) -> anyhow::Result<()> {
    use rlimit::Resource;
    let (soft, hard) = Resource::NOFILE.get()?;
    if soft >= need {
        return Ok(());
    }
    let result = if hard >= need {
        Resource::NOFILE.set(need, hard)
    } else {
        Resource::NOFILE.set(need, need)
    };
    result.map_err(|e| {
        anyhow::anyhow!(
            "{need} open files are needed but the limit is {soft} (hard {hard}) and raising \
             it failed ({e}): as root, `ulimit -Hn {need}` first, or use fewer --clients"
        )
    })
}
