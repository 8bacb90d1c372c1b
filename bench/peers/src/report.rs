//! What `peers mqtt` measured, printed with host-chat bench's JSON keys (so one rate
//! search reads both) or as a table.

use serde_json::json;
use std::fmt::Write as _;

/// CPU time and memory over the measured interval.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cost {
    pub wall_s: f64,
    pub server_cpu_s: Option<f64>,
    pub server_memory_kib: Option<(u64, u64)>,
    pub bench_cpu_s: Option<f64>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub mode: &'static str,
    pub clients: usize,
    pub joined: usize,
    pub messages: u64,
    pub size: usize,
    pub rate: Option<f64>,
    pub fanout: f64,
    pub elapsed: f64,
    pub send_elapsed: f64,
    pub sent: u64,
    pub accepted: u64,
    pub delivered: u64,
    pub expected: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub connection_errors: u64,
    pub delivery_us: Vec<u32>,
    pub receipt_us: Vec<u32>,
    pub cost: Cost,
    pub stopped: String,
    pub error: Option<String>,
}

/// The `p`-quantile (0 to 1) of sorted `values` (µs), in milliseconds.
pub fn quantile_ms(sorted: &[u32], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    Some(f64::from(sorted[rank - 1]) / 1000.0)
}

impl Report {
    pub fn print(mut self, as_json: bool, server: &str) {
        self.delivery_us.sort_unstable();
        self.receipt_us.sort_unstable();
        let per_sec = |n: u64| {
            if self.elapsed > 0.0 {
                n as f64 / self.elapsed
            } else {
                0.0
            }
        };
        let sent_per_s = if self.send_elapsed > 0.0 {
            self.sent as f64 / self.send_elapsed
        } else {
            0.0
        };
        let cost = self.cost;
        let share = |cpu: Option<f64>| cpu.filter(|_| cost.wall_s > 0.0).map(|s| s / cost.wall_s);
        let per_delivery_us = cost
            .server_cpu_s
            .filter(|_| self.delivered > 0)
            .map(|s| s * 1e6 / self.delivered as f64);
        let lat = |v: &[u32]| {
            json!({
                "p50_ms": quantile_ms(v, 0.5),
                "p99_ms": quantile_ms(v, 0.99),
                "p999_ms": quantile_ms(v, 0.999),
                "max_ms": quantile_ms(v, 1.0),
            })
        };
        if as_json {
            let mut value = json!({
                "server": server,
                "mode": self.mode,
                "clients": self.clients,
                "rooms": 1,
                "joined": self.joined,
                "messages": self.messages,
                "size": self.size,
                "rate": self.rate,
                "fanout": self.fanout,
                "elapsed_s": self.elapsed,
                "send_elapsed_s": self.send_elapsed,
                "stopped": self.stopped,
                "error": self.error,
                "sent": self.sent,
                "unsent": self.messages - self.sent,
                "accepted": self.accepted,
                "refused": 0,
                "unanswered": self.sent - self.accepted,
                "delivered": self.delivered,
                "expected_deliveries": self.expected,
                "lost": self.lost,
                "duplicates": self.duplicates,
                "connection_errors": self.connection_errors,
            });
            let more = json!({
                "accepted_per_s": per_sec(self.accepted),
                "delivered_per_s": per_sec(self.delivered),
                "sent_per_s": sent_per_s,
                "measured_s": cost.wall_s,
                "server_cpu_s": cost.server_cpu_s,
                "server_cpu_share": share(cost.server_cpu_s),
                "server_cpu_per_delivery_us": per_delivery_us,
                "server_rss_kib": cost.server_memory_kib.map(|m| m.0),
                "server_hwm_kib": cost.server_memory_kib.map(|m| m.1),
                "bench_cpu_s": cost.bench_cpu_s,
                "bench_cpu_share": share(cost.bench_cpu_s),
                "delivery_latency": lat(&self.delivery_us),
                "receipt_latency": lat(&self.receipt_us),
            });
            if let (Some(value), serde_json::Value::Object(more)) = (value.as_object_mut(), more) {
                value.extend(more);
            }
            println!("{value}");
            return;
        }
        if self.error.is_some() {
            return;
        }
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "peers mqtt: {} {} clients on one topic, {} messages of {} bytes{}, against {server}",
            self.clients,
            self.mode,
            self.messages,
            self.size,
            self.rate
                .map(|r| format!(" at {r:.0}/s"))
                .unwrap_or_default()
        );
        let mut rows = vec![
            (
                "elapsed",
                format!("{:.3} s ({})", self.elapsed, self.stopped),
            ),
            ("sent", format!("{} ({sent_per_s:.0}/s)", self.sent)),
            (
                "accepted",
                format!(
                    "{} ({:.0} msg/s, PUBACKed)",
                    self.accepted,
                    per_sec(self.accepted)
                ),
            ),
            (
                "delivered",
                format!(
                    "{} of {} (fan-out {}, {:.0} deliveries/s)",
                    self.delivered,
                    self.expected,
                    self.fanout,
                    per_sec(self.delivered)
                ),
            ),
            (
                "lost",
                format!(
                    "{} deliveries, {} messages unacknowledged, {} duplicates, {} connection errors",
                    self.lost,
                    self.sent - self.accepted,
                    self.duplicates,
                    self.connection_errors
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
                "PUBACK latency",
                format!(
                    "p50 {} ms  p99 {} ms  p99.9 {} ms  max {} ms",
                    ms(quantile_ms(&self.receipt_us, 0.5)),
                    ms(quantile_ms(&self.receipt_us, 0.99)),
                    ms(quantile_ms(&self.receipt_us, 0.999)),
                    ms(quantile_ms(&self.receipt_us, 1.0)),
                ),
            ),
        ];
        if let Some(cpu) = cost.server_cpu_s {
            rows.push((
                "broker cost",
                format!(
                    "{} CPU per delivery ({cpu:.2} s CPU, {:.0} % of a core){}",
                    per_delivery_us.map_or("-".to_owned(), |us| format!("{us:.2} µs")),
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
        println!("{}", out.trim_end());
    }
}
