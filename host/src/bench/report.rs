//! What a run measured (`Report`: counts, latencies, cost) and printing it: the table or
//! one JSON object.

use super::member;
use super::options::{BenchArgs, Mode};
use crate::net;
use serde_json::json;
use std::fmt::Write as _;

#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) sent: u64,
    pub(super) accepted: u64,
    pub(super) refused: u64,
    pub(super) unanswered: u64,
    pub(super) delivered: u64,
    /// Deliveries the accepted lines owe: each one's fan-out.
    pub(super) expected: u64,
    pub(super) duplicates: u64,
    pub(super) chat_datagrams: u64,
    pub(super) datagrams_out: u64,
    pub(super) datagrams_in: u64,
    pub(super) syscalls_out: u64,
    pub(super) syscalls_in: u64,
}

/// CPU time and memory over the measured interval.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Cost {
    /// Wall-clock seconds of the interval.
    pub(super) wall_s: f64,
    /// The server's CPU seconds in it (a spawned server only).
    pub(super) server_cpu_s: Option<f64>,
    /// The server's resident memory at the end, and its peak, KiB.
    pub(super) server_memory_kib: Option<(u64, u64)>,
    /// This generator's CPU seconds in it.
    pub(super) bench_cpu_s: Option<f64>,
}

/// What a run measured.
pub(super) struct Report {
    pub(super) mode: Mode,
    pub(super) clients: usize,
    pub(super) rooms: usize,
    pub(super) joined: usize,
    pub(super) messages: u64,
    pub(super) size: usize,
    pub(super) rate: Option<f64>,
    /// Mean fan-out of a line (members that get it).
    pub(super) fanout: f64,
    pub(super) counts: Counts,
    pub(super) elapsed: f64,
    pub(super) send_elapsed: f64,
    pub(super) delivery_us: Vec<u32>,
    pub(super) receipt_us: Vec<u32>,
    pub(super) cost: Cost,
    /// Why the run ended: "complete", or what was still missing.
    pub(super) stopped: String,
    /// Why there was no run (not every client got in).
    pub(super) error: Option<String>,
}

/// The `p`-quantile (0 to 1) of sorted `values`, in milliseconds.
pub(super) fn quantile_ms(sorted: &[u32], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    Some(f64::from(sorted[rank - 1]) / 1000.0)
}

impl Report {
    pub(super) fn print(
        mut self,
        args: &BenchArgs,
        server: &str,
        server_stats: Option<(u64, u64, u64)>,
    ) {
        self.delivery_us.sort_unstable();
        self.receipt_us.sort_unstable();
        let c = &self.counts;
        let per_sec = |n: u64| {
            if self.elapsed > 0.0 {
                n as f64 / self.elapsed
            } else {
                0.0
            }
        };
        let expected = c.expected;
        let lost = expected.saturating_sub(c.delivered);
        let unanswered = c.sent.saturating_sub(c.accepted + c.refused);
        let retransmissions = c.chat_datagrams.saturating_sub(c.sent);
        let cost = self.cost;
        let share = |cpu: Option<f64>| cpu.filter(|_| cost.wall_s > 0.0).map(|s| s / cost.wall_s);
        let cpu_per_delivery_us = cost
            .server_cpu_s
            .filter(|_| c.delivered > 0)
            .map(|s| s * 1e6 / c.delivered as f64);
        let lat = |v: &[u32]| {
            json!({
                "p50_ms": quantile_ms(v, 0.5),
                "p99_ms": quantile_ms(v, 0.99),
                "p999_ms": quantile_ms(v, 0.999),
                "max_ms": quantile_ms(v, 1.0),
            })
        };
        let mode = match self.mode {
            Mode::Framed => "framed",
            Mode::Legacy => "legacy",
            Mode::Plain => "plain",
        };
        let sent_per_s = if self.send_elapsed > 0.0 {
            c.sent as f64 / self.send_elapsed
        } else {
            0.0
        };
        if args.json {
            let value = json!({
                "server": server,
                "mode": mode,
                "clients": self.clients,
                "rooms": self.rooms,
                "joined": self.joined,
                "messages": self.messages,
                "size": self.size,
                "rate": self.rate,
                "window": args.window.unwrap_or(match args.mode {
                    Mode::Framed => member::MAX_IN_FLIGHT as u16,
                    Mode::Legacy | Mode::Plain => 8,
                }),
                "drain_s": args.drain,
                "time_limit_s": args.time_limit,
                "settle": !args.no_settle,
                // Whole when every room has the same size (the usual case).
                "fanout": if self.fanout.fract() == 0.0 {
                    json!(self.fanout as u64)
                } else {
                    json!(self.fanout)
                },
                "elapsed_s": self.elapsed,
                "send_elapsed_s": self.send_elapsed,
                "stopped": self.stopped,
                "error": self.error,
                "sent": c.sent,
                "unsent": self.messages - c.sent,
                "accepted": c.accepted,
                "refused": c.refused,
                "unanswered": unanswered,
                "delivered": c.delivered,
                "expected_deliveries": expected,
                "lost": lost,
                "duplicates": c.duplicates,
                "retransmissions": retransmissions,
                "server_retransmission_rounds": server_stats.map(|s| s.2),
                "server_relayed": server_stats.map(|s| s.0),
                "server_deliveries_sent": server_stats.map(|s| s.1),
            });
            let more = json!({
                "accepted_per_s": per_sec(c.accepted),
                "delivered_per_s": per_sec(c.delivered),
                "sent_per_s": sent_per_s,
                "measured_s": cost.wall_s,
                "server_cpu_s": cost.server_cpu_s,
                "server_cpu_share": share(cost.server_cpu_s),
                "server_cpu_per_delivery_us": cpu_per_delivery_us,
                "server_rss_kib": cost.server_memory_kib.map(|m| m.0),
                "server_hwm_kib": cost.server_memory_kib.map(|m| m.1),
                "bench_cpu_s": cost.bench_cpu_s,
                "bench_cpu_share": share(cost.bench_cpu_s),
                "datagrams_out": c.datagrams_out,
                "datagrams_in": c.datagrams_in,
                "datagrams_per_syscall_in": c.datagrams_in as f64 / c.syscalls_in.max(1) as f64,
                "delivery_latency": lat(&self.delivery_us),
                "receipt_latency": lat(&self.receipt_us),
            });
            let mut value = value;
            if let (Some(value), serde_json::Value::Object(more)) = (value.as_object_mut(), more) {
                value.extend(more);
            }
            net::out(&value.to_string());
            return;
        }
        if self.error.is_some() {
            return; // said by the caller, as the error
        }
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "host-chat bench: {} {mode} clients{}, {} messages of {} bytes{}, against {server}",
            self.clients,
            if self.rooms > 1 {
                format!(" in {} rooms", self.rooms)
            } else {
                String::new()
            },
            self.messages,
            self.size,
            self.rate
                .map(|r| format!(" at {r:.0}/s"))
                .unwrap_or_default()
        );
        let mut rows: Vec<(&str, String)> = vec![
            (
                "elapsed",
                format!("{:.3} s ({})", self.elapsed, self.stopped),
            ),
            ("sent", format!("{} ({sent_per_s:.0}/s)", c.sent)),
            (
                "accepted",
                format!(
                    "{} ({:.0} msg/s){}",
                    c.accepted,
                    per_sec(c.accepted),
                    if c.refused > 0 {
                        format!(", {} refused", c.refused)
                    } else {
                        String::new()
                    }
                ),
            ),
            (
                "delivered",
                format!(
                    "{} of {} (fan-out {:.1}, {:.0} deliveries/s)",
                    c.delivered,
                    expected,
                    self.fanout,
                    per_sec(c.delivered)
                ),
            ),
            (
                "lost",
                format!(
                    "{lost} deliveries, {unanswered} lines unanswered, {} duplicates",
                    c.duplicates
                ),
            ),
            (
                "retransmitted",
                format!(
                    "{retransmissions} lines by clients{}",
                    server_stats
                        .map(|s| format!(", {} rounds by the server", s.2))
                        .unwrap_or_default()
                ),
            ),
            (
                "delivery latency",
                format!(
                    "p50 {} ms  p99 {} ms  p99.9 {} ms  max {} ms",
                    ms(quantile_ms(&self.delivery_us, 0.5)),
                    ms(quantile_ms(&self.delivery_us, 0.99)),
                    ms(quantile_ms(&self.delivery_us, 0.999)),
                    ms(quantile_ms(&self.delivery_us, 1.0)),
                ),
            ),
            (
                "receipt latency",
                format!(
                    "p50 {} ms  p99 {} ms  p99.9 {} ms  max {} ms",
                    ms(quantile_ms(&self.receipt_us, 0.5)),
                    ms(quantile_ms(&self.receipt_us, 0.99)),
                    ms(quantile_ms(&self.receipt_us, 0.999)),
                    ms(quantile_ms(&self.receipt_us, 1.0)),
                ),
            ),
            (
                "datagrams",
                format!(
                    "{} out, {} in ({:.1} per recvmmsg)",
                    c.datagrams_out,
                    c.datagrams_in,
                    c.datagrams_in as f64 / c.syscalls_in.max(1) as f64
                ),
            ),
        ];
        if let Some(cpu) = cost.server_cpu_s {
            rows.push((
                "server cost",
                format!(
                    "{} CPU per delivery ({cpu:.2} s CPU, {:.0} % of a core){}",
                    cpu_per_delivery_us.map_or("-".to_owned(), |us| format!("{us:.2} µs")),
                    share(Some(cpu)).unwrap_or(0.0) * 100.0,
                    cost.server_memory_kib
                        .map(|(rss, hwm)| format!(
                            ", RSS {:.1} MiB (peak {:.1} MiB)",
                            rss as f64 / 1024.0,
                            hwm as f64 / 1024.0
                        ))
                        .unwrap_or_default()
                ),
            ));
        }
        if let Some(share) = share(cost.bench_cpu_s) {
            rows.push((
                "generator",
                format!("{:.0} % of a core (this process)", share * 100.0),
            ));
        }
        for (name, value) in rows {
            let _ = writeln!(out, "  {name:<18} {value}");
        }
        net::out(out.trim_end());
    }
}
