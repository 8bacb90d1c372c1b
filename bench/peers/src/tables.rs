//! The two tables of BENCHMARKS.md "Relay at scale": host-chat against mosquitto (the
//! highest rate each sustains, per room size), and host-chat against the plain relay at
//! a fixed load (what a delivery costs the server as rooms grow).

use crate::search::{self, Outcome, Probe, SearchOptions};
use serde_json::Value;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `peers table`.
#[derive(Debug, clap::Args)]
pub struct TableArgs {
    /// Room sizes (members = subscribers), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "4,64,250,1000")]
    pub sizes: Vec<u32>,

    /// The host-chat binary (built with `cargo build --release -p host-chat`).
    #[arg(long, value_name = "PATH", default_value = "target/release/host-chat")]
    pub host_chat: PathBuf,

    /// One more argument for the spawned host-chat server (repeat it).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub server_arg: Vec<OsString>,

    /// The mosquitto program.
    #[arg(long, value_name = "PATH", default_value = "mosquitto")]
    pub mosquitto: String,

    #[command(flatten)]
    pub search: SearchOptions,
}

/// `peers scale`.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Rows, MEMBERSxROOMS, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10x1,100x1,1000x1,10000x1000"
    )]
    pub rows: Vec<String>,

    /// Deliveries per second offered in every row: lines/s = this / members per room.
    #[arg(long, value_name = "D", default_value_t = 20_000.0)]
    pub deliveries: f64,

    /// Seconds of load per run.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub seconds: f64,

    /// The host-chat binary.
    #[arg(long, value_name = "PATH", default_value = "target/release/host-chat")]
    pub host_chat: PathBuf,

    /// One more argument for the spawned host-chat server (repeat it), e.g.
    /// `--server-arg=--max-members --server-arg=10000`.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub server_arg: Vec<OsString>,
}

fn log_probe(name: &str, size: u32, probe: &Probe) {
    let report = probe.report.as_ref();
    let f = |key: &str| report.and_then(|r| r[key].as_f64()).unwrap_or(0.0);
    let p99 = report.and_then(|r| r["delivery_latency"]["p99_ms"].as_f64());
    eprintln!(
        "  {name} {size} members at {}/s: {} (accepted {:.0}/s, {:.0} deliveries/s, p99 {})",
        probe.rate,
        probe.failure.as_deref().unwrap_or("pass"),
        f("accepted_per_s"),
        f("delivered_per_s"),
        p99.map_or("-".to_owned(), |p| format!("{p:.1} ms"))
    );
    if let Some(report) = report {
        eprintln!("    {report}");
    }
}

fn latency(report: Option<&Value>) -> String {
    let l = report.map(|r| &r["delivery_latency"]);
    let ms = |k: &str| {
        l.and_then(|l| l[k].as_f64())
            .map_or("-".to_owned(), |v| format!("{v:.1}"))
    };
    format!("{} / {}", ms("p50_ms"), ms("p99_ms"))
}

fn sustained_cells(outcome: &Outcome) -> [String; 4] {
    let best = outcome.best.as_ref().and_then(|p| p.report.as_ref());
    let deliveries = best
        .and_then(|r| r["delivered_per_s"].as_f64())
        .map_or("-".to_owned(), |d| format!("{d:.0}"));
    let limit = outcome.limit.as_ref().map_or("-".to_owned(), |p| {
        format!("at {}/s: {}", p.rate, p.failure.as_deref().unwrap_or(""))
    });
    [
        format!("**{}**", outcome.sustained),
        deliveries,
        latency(best),
        limit,
    ]
}

/// `peers table`: both searches per size, one table.
pub fn peers(args: &TableArgs, me: &OsString) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for &size in &args.sizes {
        let mut host: Vec<OsString> = vec![
            args.host_chat.clone().into(),
            "bench".into(),
            "--spawn-server".into(),
            "--clients".into(),
            size.to_string().into(),
        ];
        for arg in &args.server_arg {
            host.push("--server-arg".into());
            host.push(arg.clone());
        }
        eprintln!("host-chat, {size} members:");
        let h = search::search(&host, &args.search, &mut |p| {
            log_probe("host-chat", size, p)
        });
        let mqtt: Vec<OsString> = vec![
            me.clone(),
            "mqtt".into(),
            "--spawn-broker".into(),
            "--mosquitto".into(),
            args.mosquitto.clone().into(),
            "--clients".into(),
            size.to_string().into(),
        ];
        eprintln!("mosquitto, {size} subscribers:");
        let m = search::search(&mqtt, &args.search, &mut |p| {
            log_probe("mosquitto", size, p)
        });
        let ratio = if m.sustained > 0.0 {
            format!("**{:.2}×**", h.sustained / m.sustained)
        } else if h.sustained > 0.0 {
            "∞".to_owned()
        } else {
            "-".to_owned()
        };
        let [hs, hd, hl, hlim] = sustained_cells(&h);
        let [ms, md, ml, mlim] = sustained_cells(&m);
        rows.push(format!(
            "| {size} | {hs} | {hd} | {hl} | {hlim} | {ms} | {md} | {ml} | {mlim} | {ratio} |"
        ));
    }
    println!(
        "Highest rate with nothing lost and delivery p99 under {} ms ({} s probes; \
         64-byte messages; every member gets every message, its own included):\n",
        args.search.p99_ms, args.search.seconds
    );
    println!(
        "| members | host-chat lines/s | deliveries/s | p50 / p99 ms | host-chat's limit | \
         mosquitto msg/s (QoS 1) | deliveries/s | p50 / p99 ms | mosquitto's limit | \
         host-chat ÷ mosquitto |"
    );
    println!("|---:|---:|---:|---|---|---:|---:|---|---|---:|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

/// One `host-chat bench --json` run, bounded in time; its report or why there is none.
fn bench(
    host_chat: &PathBuf,
    args: &[String],
    server_args: &[OsString],
    seconds: f64,
) -> Result<Value, String> {
    let mut cmd = Command::new(host_chat);
    cmd.arg("bench").args(args).arg("--json");
    for arg in server_args {
        cmd.arg("--server-arg").arg(arg);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let limit = Duration::from_secs(seconds.ceil() as u64 * 3 + 90);
    let (out, err) = search::run_bounded(cmd, limit).map_err(|e| format!("{e:#}"))?;
    out.lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| err.trim().lines().last().unwrap_or("no output").to_owned())
}

/// The cells of one side of a scale row.
fn scale_cells(result: &Result<Value, String>) -> (String, Option<f64>) {
    let report = match result {
        Ok(report) if report["error"].is_null() => report,
        Ok(report) => {
            return (
                format!("{} | | | | | ", report["error"].as_str().unwrap_or("")),
                None,
            );
        }
        Err(e) => return (format!("{e} | | | | | "), None),
    };
    let f = |k: &str| report[k].as_f64().unwrap_or(0.0);
    let cpu = report["server_cpu_per_delivery_us"].as_f64();
    let lost = report["lost"].as_u64().unwrap_or(0) + report["unanswered"].as_u64().unwrap_or(0);
    (
        format!(
            "{:.0} | {:.0} | {} | {} | {:.1} | {}",
            f("accepted_per_s"),
            f("delivered_per_s"),
            latency(Some(report)),
            cpu.map_or("-".to_owned(), |c| format!("{c:.2}")),
            f("server_hwm_kib") / 1024.0,
            if lost == 0 {
                "0".to_owned()
            } else {
                format!(
                    "{} deliveries, {} lines",
                    report["lost"], report["unanswered"]
                )
            }
        ),
        cpu,
    )
}

/// `peers scale`: host-chat and the plain relay at the same load, row by row.
pub fn scale(args: &ScaleArgs) -> anyhow::Result<()> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} deliveries/s offered in every row ({} s of load; lines/s = that / members per \
         room); host-chat: framed clients, fan-out = room size; plain relay: fan-out = room \
         size - 1. CPU per delivery: the server's utime + stime over the run / deliveries.\n",
        args.deliveries, args.seconds
    );
    let _ = writeln!(
        out,
        "| members / rooms | lines/s offered | host-chat lines/s | deliveries/s | p50 / p99 ms | \
         CPU µs / delivery | peak RSS MiB | lost | plain lines/s | deliveries/s | p50 / p99 ms | \
         CPU µs / delivery | peak RSS MiB | lost | CPU per delivery, host-chat ÷ plain |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---|---:|---:|---|---:|---:|---|---:|---:|---|---:|"
    );
    for row in &args.rows {
        let (members, rooms) = row
            .split_once('x')
            .and_then(|(m, r)| Some((m.parse::<u32>().ok()?, r.parse::<u32>().ok()?)))
            .ok_or_else(|| {
                anyhow::anyhow!("--rows {row:?}: expected MEMBERSxROOMS, e.g. 1000x1")
            })?;
        let per_room = f64::from(members) / f64::from(rooms);
        let rate = (args.deliveries / per_room).max(1.0).round();
        let messages = (rate * args.seconds).ceil() as u64;
        let common = |mode: &str| -> Vec<String> {
            vec![
                "--mode".into(),
                mode.into(),
                "--spawn-server".into(),
                "--clients".into(),
                members.to_string(),
                "--rooms".into(),
                rooms.to_string(),
                "--rate".into(),
                rate.to_string(),
                "--messages".into(),
                messages.to_string(),
                "--drain".into(),
                "3".into(),
                "--time-limit".into(),
                (args.seconds.ceil() as u64 * 2 + 5).to_string(),
            ]
        };
        eprintln!("{members} members in {rooms} rooms, {rate} lines/s: host-chat ...");
        let host = bench(
            &args.host_chat,
            &common("framed"),
            &args.server_arg,
            args.seconds,
        );
        eprintln!("  {host:?}");
        eprintln!("{members} members in {rooms} rooms, {rate} lines/s: plain relay ...");
        let plain = bench(&args.host_chat, &common("plain"), &[], args.seconds);
        eprintln!("  {plain:?}");
        let (h, hcpu) = scale_cells(&host);
        let (p, pcpu) = scale_cells(&plain);
        let ratio = match (hcpu, pcpu) {
            (Some(h), Some(p)) if p > 0.0 => format!("**{:.2}×**", h / p),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {members} / {rooms} | {rate} | {h} | {p} | {ratio} |"
        );
    }
    print!("{out}");
    Ok(())
}
