//! `peers mqtt`: the MQTT side of the comparison, modelled on `host-chat bench`.
//!
//! N clients (rumqttc, MQTT 3.1.1) in one process and one thread (a current-thread tokio
//! runtime, as host-chat bench runs one mio loop), each with its own TCP connection. All
//! subscribe to one topic (the room) at QoS 1 and all publish to it, so every client gets
//! every message, its own included: fan-out N, as host-chat's framed clients.
//!
//! The publishing load is host-chat bench's: messages go out round-robin over the
//! clients, a client whose window is full is skipped; the window is the messages it has
//! published and not yet had PUBACKed (16 by default, host-chat's outbox). Open loop
//! (`--rate R`): the k-th message is due at k / R seconds; closed loop (no `--rate`):
//! whenever a window has room. A message's payload is `#C:K:` padded to 64 bytes.
//!
//! Measured: accepted messages (PUBACKed) per second, deliveries per second (every
//! subscriber's PUBLISH), delivery latency from the publish call to the subscriber's
//! PUBLISH event, PUBACK latency, lost deliveries (an accepted message that did not reach
//! every subscriber), and the broker's CPU time and memory from `/proc` when spawned.

use crate::broker::Broker;
use crate::procfs;
use crate::report::{Cost, Report};
use anyhow::Context as _;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// `peers mqtt` options: the same names as `host-chat bench`'s where they mean the same.
#[derive(Debug, clap::Args)]
pub struct MqttArgs {
    /// The broker, HOST:PORT [default: 127.0.0.1:1883, or the spawned one].
    #[arg(value_name = "BROKER")]
    pub broker: Option<String>,

    /// Start a private mosquitto on 127.0.0.1 (a free port, a config of its own) and
    /// measure it.
    #[arg(long)]
    pub spawn_broker: bool,

    /// The mosquitto program, for --spawn-broker.
    #[arg(long, value_name = "PATH", default_value = "mosquitto")]
    pub mosquitto: String,

    /// One more line for the spawned broker's config (repeat it), e.g.
    /// `--broker-config 'max_queued_messages 10000'`.
    #[arg(long, value_name = "LINE")]
    pub broker_config: Vec<String>,

    /// Clients, each on its own connection, all subscribed to the topic.
    #[arg(long, short = 'c', value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub clients: u32,

    /// Messages to publish in all, spread evenly over the clients.
    #[arg(long, short = 'n', value_name = "M", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=50_000_000))]
    pub messages: u64,

    /// Bytes of payload per message.
    #[arg(long, short = 'd', value_name = "B", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(24..=60_000))]
    pub size: u16,

    /// Open loop: messages per second in all [default: closed loop].
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,

    /// Messages each client may have published and not yet had acknowledged (PUBACK).
    #[arg(long, short = 'P', value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub window: u16,

    /// QoS of the publications and the subscriptions (0: no PUBACK, a message counts as
    /// accepted when it is written).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,

    /// The topic (the room).
    #[arg(long, default_value = "bench/room")]
    pub topic: String,

    /// Seconds without anything arriving after which the run stops.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub drain: u64,

    /// Stop the run this many seconds after the first message.
    #[arg(long, value_name = "SECONDS")]
    pub time_limit: Option<u64>,

    /// Print one JSON object (host-chat bench's keys) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// How long clients may take to connect and subscribe: this, plus 2 ms each.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the client tasks and the publisher share (one thread: `Rc<RefCell>`).
#[derive(Debug, Default)]
struct State {
    clients: usize,
    qos1: bool,
    /// Per client: when each of its messages was published (ns since the start).
    sent_at: Vec<Vec<u64>>,
    /// Per client: its messages awaiting their PUBACK, oldest first (mosquitto answers a
    /// connection's QoS 1 PUBLISHes in order).
    waiting: Vec<VecDeque<u32>>,
    /// Per client and message: accepted, and subscribers that got it.
    acked: Vec<Vec<bool>>,
    got: Vec<Vec<u32>>,
    subscribed: Vec<bool>,
    sent: u64,
    accepted: u64,
    delivered: u64,
    duplicates: u64,
    connection_errors: u64,
    first_error: Option<String>,
    delivery_us: Vec<u32>,
    receipt_us: Vec<u32>,
    first_send: Option<u64>,
    last_send: u64,
    last_progress: u64,
}

fn ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Sender and number of a payload `#C:K:...`.
fn parse_payload(payload: &[u8]) -> Option<(usize, usize)> {
    let rest = payload.strip_prefix(b"#")?;
    let mut parts = rest.splitn(3, |&b| b == b':');
    let number = |p: Option<&[u8]>| -> Option<usize> { std::str::from_utf8(p?).ok()?.parse().ok() };
    Some((number(parts.next())?, number(parts.next())?))
}

impl State {
    fn delivery(&mut self, payload: &[u8], now: u64) {
        let Some((c, k)) = parse_payload(payload) else {
            return;
        };
        let (Some(got), Some(&at)) = (
            self.got.get_mut(c).and_then(|g| g.get_mut(k)),
            self.sent_at.get(c).and_then(|s| s.get(k)),
        ) else {
            self.duplicates += 1;
            return;
        };
        *got += 1;
        if *got as usize > self.clients {
            self.duplicates += 1;
            return;
        }
        self.delivered += 1;
        let us = now.saturating_sub(at) / 1000;
        self.delivery_us.push(u32::try_from(us).unwrap_or(u32::MAX));
        self.last_progress = now;
    }

    fn puback(&mut self, i: usize, now: u64) {
        let Some(k) = self.waiting[i].pop_front() else {
            return;
        };
        self.accept(i, k as usize, now);
    }

    fn accept(&mut self, i: usize, k: usize, now: u64) {
        self.accepted += 1;
        self.acked[i][k] = true;
        let us = now.saturating_sub(self.sent_at[i][k]) / 1000;
        self.receipt_us.push(u32::try_from(us).unwrap_or(u32::MAX));
        self.last_progress = now;
    }

    /// Deliveries owed to accepted messages that never came.
    fn lost(&self) -> u64 {
        let n = self.clients as u64;
        self.acked
            .iter()
            .zip(&self.got)
            .flat_map(|(acked, got)| acked.iter().zip(got))
            .filter(|(acked, _)| **acked)
            .map(|(_, got)| n.saturating_sub(u64::from(*got)))
            .sum()
    }
}

/// One client's event loop: connection, subscription, deliveries, PUBACKs.
async fn client_task(
    i: usize,
    mut eventloop: EventLoop,
    state: Rc<RefCell<State>>,
    start: Instant,
    wake: Rc<Notify>,
) {
    loop {
        let event = eventloop.poll().await;
        let now = ns(start);
        let failed = {
            let mut s = state.borrow_mut();
            match event {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    s.subscribed[i] = true;
                    false
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    s.delivery(&publish.payload, now);
                    false
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    s.puback(i, now);
                    wake.notify_one();
                    false
                }
                Ok(_) => false,
                Err(e) => {
                    s.connection_errors += 1;
                    s.first_error
                        .get_or_insert_with(|| format!("client {i}: {e}"));
                    true
                }
            }
        };
        if failed {
            // rumqttc connects again on the next poll.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `peers mqtt`.
pub fn run(args: &MqttArgs) -> anyhow::Result<()> {
    if args.spawn_broker && args.broker.is_some() {
        anyhow::bail!("give either BROKER or --spawn-broker, not both");
    }
    procfs::raise_open_files(u64::from(args.clients) * 2 + 64)?;
    let broker = if args.spawn_broker {
        Some(Broker::start(&args.mosquitto, &args.broker_config)?)
    } else {
        None
    };
    let addr = match &broker {
        Some(broker) => broker.addr(),
        None => {
            let text = args.broker.as_deref().unwrap_or("127.0.0.1:1883");
            text.to_socket_addrs()
                .with_context(|| format!("broker {text:?}: expected HOST:PORT"))?
                .next()
                .with_context(|| format!("broker {text:?} has no address"))?
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let local = tokio::task::LocalSet::new();
    let pid = broker.as_ref().map(Broker::pid);
    let report = local.block_on(&runtime, measure(args, addr, pid))?;
    drop(local);
    drop(runtime);
    drop(broker);
    let server = if args.spawn_broker {
        "mosquitto (private)".to_owned()
    } else {
        addr.to_string()
    };
    let error = report.error.clone();
    report.print(args.json, &server);
    match error {
        Some(error) => Err(anyhow::anyhow!(error)),
        None => Ok(()),
    }
}

async fn measure(args: &MqttArgs, addr: SocketAddr, pid: Option<u32>) -> anyhow::Result<Report> {
    let start = Instant::now();
    let n = args.clients as usize;
    let qos = if args.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let window = usize::from(args.window);
    let per_client = usize::try_from(args.messages / n as u64 + 1).unwrap_or(0);
    let state = Rc::new(RefCell::new(State {
        clients: n,
        qos1: args.qos == 1,
        sent_at: (0..n).map(|_| Vec::with_capacity(per_client)).collect(),
        waiting: (0..n).map(|_| VecDeque::with_capacity(window)).collect(),
        acked: (0..n).map(|_| Vec::with_capacity(per_client)).collect(),
        got: (0..n).map(|_| Vec::with_capacity(per_client)).collect(),
        subscribed: vec![false; n],
        ..State::default()
    }));
    let wake = Rc::new(Notify::new());
    let mut clients = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let mut options =
            MqttOptions::new(format!("bench-{i}"), addr.ip().to_string(), addr.port());
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_inflight(args.window)
            .set_request_channel_capacity(window + 4)
            .set_max_packet_size(usize::from(args.size) + 1024, usize::from(args.size) + 1024);
        let (client, mut eventloop) = AsyncClient::new(options, window + 4);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        network.set_connection_timeout(10);
        eventloop.set_network_options(network);
        client
            .try_subscribe(args.topic.clone(), qos)
            .context("cannot queue the subscription")?;
        tasks.push(tokio::task::spawn_local(client_task(
            i,
            eventloop,
            Rc::clone(&state),
            start,
            Rc::clone(&wake),
        )));
        clients.push(client);
    }

    // Phase 1: everyone connected and subscribed.
    let join_time = START_TIMEOUT + Duration::from_millis(2) * args.clients;
    let deadline = Instant::now() + join_time;
    loop {
        let joined = state.borrow().subscribed.iter().filter(|s| **s).count();
        if joined == n {
            break;
        }
        if Instant::now() > deadline {
            let s = state.borrow();
            let error = format!(
                "only {joined} of {n} clients connected and subscribed within {:.0} s{}",
                join_time.as_secs_f64(),
                s.first_error
                    .as_ref()
                    .map(|e| format!(" (first error: {e})"))
                    .unwrap_or_default()
            );
            drop(s);
            for task in &tasks {
                task.abort();
            }
            return Ok(failed_report(args, joined, error));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Phase 2: the load, then what is still on its way.
    let wall0 = Instant::now();
    let broker_cpu0 = procfs::cpu_time(pid);
    let bench_cpu0 = procfs::cpu_time(None);
    let rate = args.rate.filter(|r| *r > 0.0);
    let mut payload = String::with_capacity(usize::from(args.size));
    let mut last_count = 0u64;
    let mut last_progress_at = ns(start);
    let mut next = 0usize;
    let stopped;
    loop {
        let now = ns(start);
        {
            let mut s = state.borrow_mut();
            let allowed = match rate {
                None => args.messages,
                Some(rate) => {
                    let since = now.saturating_sub(s.first_send.unwrap_or(now));
                    ((since as f64 / 1e9 * rate) as u64 + 1).min(args.messages)
                }
            };
            let mut stalled = 0;
            while s.sent < allowed && stalled < n {
                let i = next;
                next = (next + 1) % n;
                if s.qos1 && s.waiting[i].len() >= window {
                    stalled += 1;
                    continue;
                }
                let k = s.sent_at[i].len();
                payload.clear();
                payload.push_str(&format!("#{i}:{k}:"));
                while payload.len() < usize::from(args.size) {
                    payload.push('x');
                }
                if clients[i]
                    .try_publish(args.topic.as_str(), qos, false, payload.as_bytes().to_vec())
                    .is_err()
                {
                    stalled += 1;
                    continue;
                }
                stalled = 0;
                let at = ns(start);
                s.sent_at[i].push(at);
                s.acked[i].push(false);
                s.got[i].push(0);
                s.sent += 1;
                s.first_send.get_or_insert(at);
                s.last_send = at;
                if s.qos1 {
                    s.waiting[i].push_back(k as u32);
                } else {
                    s.accept(i, k, at);
                }
            }
        }
        let wait = {
            let s = state.borrow();
            match rate {
                Some(rate) if s.sent < args.messages => {
                    let due = s.first_send.unwrap_or(now) + (s.sent as f64 / rate * 1e9) as u64;
                    Duration::from_nanos(due.saturating_sub(ns(start)))
                        .min(Duration::from_millis(50))
                }
                _ => Duration::from_millis(50),
            }
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        let s = state.borrow();
        let now = ns(start);
        let progress = s.sent + s.accepted + s.delivered;
        if progress != last_count {
            last_count = progress;
            last_progress_at = now;
        }
        if s.sent == args.messages
            && s.accepted == args.messages
            && s.delivered >= s.accepted * n as u64
        {
            stopped = "complete".to_owned();
            break;
        }
        if now.saturating_sub(last_progress_at) > Duration::from_secs(args.drain).as_nanos() as u64
        {
            stopped = format!(
                "nothing arrived for {} s ({} of {} messages sent)",
                args.drain, s.sent, args.messages
            );
            break;
        }
        if let Some(limit) = args.time_limit
            && now.saturating_sub(s.first_send.unwrap_or(now)) > limit * 1_000_000_000
        {
            stopped = format!(
                "time limit of {limit} s ({} of {} messages sent)",
                s.sent, args.messages
            );
            break;
        }
    }
    let cpu_s = |before: Option<Duration>, pid| {
        Some(procfs::cpu_time(pid)?.saturating_sub(before?).as_secs_f64())
    };
    let cost = Cost {
        wall_s: wall0.elapsed().as_secs_f64(),
        server_cpu_s: cpu_s(broker_cpu0, pid),
        server_memory_kib: pid.and_then(|pid| procfs::memory_kib(Some(pid))),
        bench_cpu_s: cpu_s(bench_cpu0, None),
    };
    for task in &tasks {
        task.abort();
    }
    let s = state.borrow();
    let first = s.first_send.unwrap_or(0);
    let end = s.last_progress.max(s.last_send);
    Ok(Report {
        mode: if s.qos1 { "mqtt-qos1" } else { "mqtt-qos0" },
        clients: n,
        joined: n,
        messages: args.messages,
        size: usize::from(args.size),
        rate,
        fanout: n as f64,
        elapsed: end.saturating_sub(first) as f64 / 1e9,
        send_elapsed: s.last_send.saturating_sub(first) as f64 / 1e9,
        sent: s.sent,
        accepted: s.accepted,
        delivered: s.delivered,
        expected: s.accepted * n as u64,
        lost: s.lost(),
        duplicates: s.duplicates,
        connection_errors: s.connection_errors,
        delivery_us: s.delivery_us.clone(),
        receipt_us: s.receipt_us.clone(),
        cost,
        stopped,
        error: None,
    })
}

fn failed_report(args: &MqttArgs, joined: usize, error: String) -> Report {
    Report {
        mode: if args.qos == 1 {
            "mqtt-qos1"
        } else {
            "mqtt-qos0"
        },
        clients: args.clients as usize,
        joined,
        messages: args.messages,
        size: usize::from(args.size),
        rate: args.rate,
        fanout: f64::from(args.clients),
        stopped: "not started".to_owned(),
        error: Some(error),
        ..Report::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_and_losses() {
        assert_eq!(parse_payload(b"#3:17:xxxx"), Some((3, 17)));
        assert_eq!(parse_payload(b"3:17:"), None);
        let mut s = State {
            clients: 2,
            sent_at: vec![vec![0, 0]],
            acked: vec![vec![true, false]],
            got: vec![vec![0, 0]],
            ..State::default()
        };
        s.delivery(b"#0:0:xx", 5_000);
        assert_eq!((s.delivered, s.delivery_us[0]), (1, 5));
        assert_eq!(
            s.lost(),
            1,
            "message 0 owes one more; message 1 was not accepted"
        );
        s.delivery(b"#0:0:xx", 6_000);
        s.delivery(b"#0:0:xx", 6_000);
        assert_eq!((s.delivered, s.duplicates, s.lost()), (2, 1, 0));
        s.delivery(b"#9:0:xx", 6_000);
        assert_eq!(s.duplicates, 2, "unknown sender");
    }
}
