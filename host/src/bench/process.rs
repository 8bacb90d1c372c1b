//! What a process costs, read from Linux's `/proc` (proc(5)): CPU time and memory of the
//! server under load and of the load generator itself, and the open-files limit that
//! thousands of client sockets need.
//!
//! Elsewhere than Linux every reading is `None` and the limit is left alone.

use std::time::Duration;

/// Clock ticks per second of `/proc/PID/stat`'s `utime`/`stime`: `USER_HZ`, which the
/// kernel fixes at 100 in its ABI on every architecture this runs on (proc(5),
/// `sysconf(_SC_CLK_TCK)`).
const USER_HZ: u64 = 100;

/// `utime + stime` of process `pid` (every thread), or of this process when `None`.
/// Resolution 10 ms.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let text = std::fs::read_to_string(proc_path(pid, "stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces:
    // field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// Resident memory of `pid` in KiB: now (`VmRSS`) and at its peak (`VmHWM`).
pub fn memory_kib(pid: Option<u32>) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(proc_path(pid, "status")).ok()?;
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

fn proc_path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

/// Makes sure this process may open `need` files (one UDP socket per client): raises the
/// soft `RLIMIT_NOFILE` to `need`, and the hard one too where that is allowed (root, or
/// `CAP_SYS_RESOURCE`). Children started afterwards (a spawned server, a broker) inherit
/// it. Says exactly what to do when it cannot.
#[cfg(target_os = "linux")]
pub fn raise_open_files(need: u64) -> anyhow::Result<()> {
    use rlimit::Resource;
    let (soft, hard) = Resource::NOFILE.get()?;
    if soft >= need {
        return Ok(());
    }
    if hard >= need {
        Resource::NOFILE.set(need, hard)?;
        return Ok(());
    }
    Resource::NOFILE.set(need, need).map_err(|e| {
        anyhow::anyhow!(
            "{need} open files are needed (one socket per client) but the limit is {soft} \
             (hard limit {hard}) and raising it failed ({e}): raise the hard limit first \
             (as root: `ulimit -Hn {need}` in the shell that runs this, or LimitNOFILE= \
             for a systemd service) or use fewer --clients"
        )
    })
}

/// Elsewhere: left to the user.
#[cfg(not(target_os = "linux"))]
pub fn raise_open_files(_need: u64) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn reads_its_own_process() {
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(x, 1);
        assert!(cpu_time(None).is_some());
        let (rss, hwm) = memory_kib(None).unwrap();
        assert!(rss > 0 && hwm >= rss, "{rss} {hwm}");
        assert!(cpu_time(Some(u32::MAX)).is_none(), "no such process");
    }
}
