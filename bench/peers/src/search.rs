//! The highest rate a load generator's target sustains: run at a rate for a fixed time,
//! check, raise geometrically, then bisect.
//!
//! A probe at rate R runs `COMMAND ... --rate R --messages ceil(R * seconds) --drain D
//! --time-limit L --json` (host-chat bench and `peers mqtt` both take these and print the
//! same JSON keys), each in a fresh process with a fresh server or broker. It passes when:
//! every client got in (`error` is null), every message was sent and accepted, no
//! delivery was lost, the sender kept the pace (sent at least 90 % of R per second), and
//! the delivery p99 is under the limit (100 ms). A probe that does not end by itself in
//! its time is killed and fails; so the search always ends, and a target that passes no
//! probe down to `--min` sustains 0.
//!
//! Starting at `--start`, the rate doubles while probes pass (halves while they fail),
//! then bisects geometrically between the best pass and the lowest fail until they are
//! within `--precision`.

use anyhow::Context as _;
use serde_json::Value;
use std::ffi::OsString;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Options of a rate search.
#[derive(Debug, Clone, clap::Args)]
pub struct SearchOptions {
    /// Seconds of load per probe.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub seconds: f64,

    /// First rate tried, messages per second.
    #[arg(long, value_name = "R", default_value_t = 100.0)]
    pub start: f64,

    /// Below this a target sustains 0.
    #[arg(long, value_name = "R", default_value_t = 5.0)]
    pub min: f64,

    /// Rates above this are not tried.
    #[arg(long, value_name = "R", default_value_t = 200_000.0)]
    pub max: f64,

    /// A probe fails when its delivery p99 is not under this, ms.
    #[arg(long, value_name = "MS", default_value_t = 100.0)]
    pub p99_ms: f64,

    /// Stop when the lowest failing rate is within this fraction above the best passing.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.15)]
    pub precision: f64,

    /// Seconds without progress that end a probe (its --drain).
    #[arg(long, value_name = "SECONDS", default_value_t = 3)]
    pub drain: u64,
}

/// One probe.
#[derive(Debug, Clone)]
pub struct Probe {
    pub rate: f64,
    /// Why it failed; `None` when it passed.
    pub failure: Option<String>,
    /// Its JSON report, when it printed one.
    pub report: Option<Value>,
}

/// What a search found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The highest passing rate, 0 when none passed.
    pub sustained: f64,
    /// The probe at that rate.
    pub best: Option<Probe>,
    /// The lowest failing probe, to say what limited the target.
    pub limit: Option<Probe>,
    pub probes: Vec<Probe>,
}

/// Runs one probe of `command` at `rate`.
pub fn probe(command: &[OsString], rate: f64, options: &SearchOptions) -> Probe {
    let messages = (rate * options.seconds).ceil().max(1.0) as u64;
    // Sending takes `seconds`; joining 10,000 clients some more; the drain at the end.
    let time_limit = (options.seconds * 2.0).ceil() as u64 + options.drain + 5;
    let hard_limit = Duration::from_secs(time_limit + 60 + 2 * options.drain);
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .args([
            "--rate",
            &format!("{rate}"),
            "--messages",
            &messages.to_string(),
        ])
        .args(["--drain", &options.drain.to_string()])
        .args(["--time-limit", &time_limit.to_string(), "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let failed = |why: String, report: Option<Value>| Probe {
        rate,
        failure: Some(why),
        report,
    };
    let output = match run_bounded(cmd, hard_limit) {
        Ok(output) => output,
        Err(e) => return failed(format!("{e:#}"), None),
    };
    let report = output
        .0
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<Value>(line).ok());
    let Some(report) = report else {
        let err = output
            .1
            .trim()
            .lines()
            .last()
            .unwrap_or("no output")
            .to_owned();
        return failed(format!("no report: {err}"), None);
    };
    let verdict = judge(&report, rate, messages, options.p99_ms);
    Probe {
        rate,
        failure: verdict,
        report: Some(report),
    }
}

/// Why `report` (of `messages` at `rate`) fails, or `None` when it passes.
pub fn judge(report: &Value, rate: f64, messages: u64, p99_limit_ms: f64) -> Option<String> {
    let n = |key: &str| report[key].as_u64().unwrap_or(0);
    if let Some(error) = report["error"].as_str() {
        return Some(error.to_owned());
    }
    let mut why = Vec::new();
    if n("sent") < messages {
        why.push(format!("{} of {messages} sent", n("sent")));
    }
    if n("accepted") < messages {
        why.push(format!("{} of {messages} accepted", n("accepted")));
    }
    if n("lost") > 0 {
        why.push(format!("{} deliveries lost", n("lost")));
    }
    let p99 = report["delivery_latency"]["p99_ms"].as_f64();
    match p99 {
        Some(p99) if p99 >= p99_limit_ms => why.push(format!("p99 {p99:.0} ms")),
        None => why.push("nothing delivered".to_owned()),
        _ => {}
    }
    let sent_per_s = report["sent_per_s"].as_f64().unwrap_or(0.0);
    if messages > 1 && sent_per_s < 0.9 * rate {
        why.push(format!("sent at {sent_per_s:.0}/s"));
    }
    (!why.is_empty()).then(|| why.join(", "))
}

/// Runs `cmd` to its end, or kills it (by PID) after `limit`. Its stdout and stderr.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> anyhow::Result<(String, String)> {
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("did not end within {} s: killed", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    ))
}

/// The search; `log` hears of every probe.
pub fn search(
    command: &[OsString],
    options: &SearchOptions,
    log: &mut dyn FnMut(&Probe),
) -> Outcome {
    let mut probes = Vec::new();
    let mut best: Option<Probe> = None;
    let mut limit: Option<Probe> = None;
    let mut rate = options.start.clamp(options.min, options.max);
    loop {
        let result = probe(command, rate, options);
        log(&result);
        probes.push(result.clone());
        if result.failure.is_none() {
            best = Some(result);
        } else {
            limit = Some(result);
        }
        let lo = best.as_ref().map(|p| p.rate);
        let hi = limit.as_ref().map(|p| p.rate);
        rate = match (lo, hi) {
            (Some(lo), None) if lo * 2.0 <= options.max => lo * 2.0,
            (Some(_), None) => break,
            (None, Some(hi)) if hi / 2.0 >= options.min => hi / 2.0,
            (None, Some(_)) => break,
            (Some(lo), Some(hi)) if hi > lo * (1.0 + options.precision) => (lo * hi).sqrt(),
            _ => break,
        };
        rate = round_rate(rate);
        if Some(rate) == lo || Some(rate) == hi {
            break; // as close as two significant figures go
        }
    }
    Outcome {
        sustained: best.as_ref().map_or(0.0, |p| p.rate),
        best,
        limit,
        probes,
    }
}

/// Two significant figures: rates that read well in a table.
fn round_rate(rate: f64) -> f64 {
    if rate <= 0.0 {
        return rate;
    }
    let step = 10f64.powf(rate.log10().floor() - 1.0);
    (rate / step).round() * step
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn verdicts() {
        let good = json!({"error": null, "sent": 100, "accepted": 100, "lost": 0,
            "sent_per_s": 101.0, "delivery_latency": {"p99_ms": 3.0}});
        assert_eq!(judge(&good, 100.0, 100, 100.0), None);
        let mut slow = good.clone();
        slow["delivery_latency"]["p99_ms"] = json!(250.0);
        assert_eq!(judge(&slow, 100.0, 100, 100.0).unwrap(), "p99 250 ms");
        let mut lossy = good.clone();
        lossy["lost"] = json!(7);
        lossy["accepted"] = json!(90);
        assert_eq!(
            judge(&lossy, 100.0, 100, 100.0).unwrap(),
            "90 of 100 accepted, 7 deliveries lost"
        );
        let refused = json!({"error": "only 256 of 1000 clients got in"});
        assert_eq!(
            judge(&refused, 10.0, 50, 100.0).unwrap(),
            "only 256 of 1000 clients got in"
        );
        let mut behind = good;
        behind["sent_per_s"] = json!(50.0);
        assert_eq!(judge(&behind, 100.0, 100, 100.0).unwrap(), "sent at 50/s");
    }

    #[test]
    fn rates_round_to_two_figures() {
        for (rate, rounded) in [(1414.2, 1400.0), (70.71, 71.0), (8.93, 8.9)] {
            assert!((round_rate(rate) - rounded).abs() < 1e-9, "{rate}");
        }
    }
}
