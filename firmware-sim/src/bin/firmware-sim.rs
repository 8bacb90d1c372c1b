//! `firmware-sim`: the device application, with its real smoltcp stack, on the PC.
//!
//! The stack's IPv4/UDP packets go through a user-space bridge to a host UDP socket
//! (no root needed), or with `--tap IFACE` (feature `tap`, Linux) to a TUN interface.
//! What the device does, and when it is done, is the node's (`firmware_sim::node`):
//! this program reads standard input, prints the node's reports and turns its outcome
//! into host-chat's exit status (`chat_cli::exit`).

use anyhow::Context;
use chat_cli::count;
use chat_cli::exit::{BadArgument, NotDelivered, check_names, exit_code};
use chat_core::fernet::Key;
use chat_core::session::{ClientConfig, ClientEvent, JsonStr};
use clap::Parser;
use firmware_sim::bridge::UdpBridge;
use firmware_sim::smoltcp::phy::Device;
use firmware_sim::smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr};
use firmware_sim::{
    App, Behaviour, Buffers, Event, GRACE_MS, Lines, Metadata, NetConfig, Node, Output, Payload,
    Report, What, keys, node::NotSentReason,
};
use rand::rngs::{StdRng, SysRng};
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::Duration;

const AFTER_HELP: &str = "\
The device has no real-time clock: its clock starts at zero and it learns the time from
the server's first verified answer. Lines read from standard input are sent to the room;
at the end of input (without --every) the simulator waits up to 5 s for the join and
the server's answers to every line, leaves the room and exits.

Keys: exactly as `host-chat client` reads them (the same code): --key-file PATH, else
$HOST_CHAT_KEY, else the default key file ~/.config/host-chat/key (copied from the
server's machine; only `host-chat server` creates one). The device holds one key: the
first of the source.

Exit status: as `host-chat client`: 0 joined and every line reached the room; 1 never
joined, refused, or a line did not reach the room (each such line gets an `undelivered`
event); 2 usage or key problem; 3 system or network problem.

Network: the device's stack is at 10.42.0.2 and sees the server at 10.42.0.1 on the
server's port; a user-space bridge carries its UDP payloads to and from ADDR. With
--tap IFACE, the stack is on a Linux TUN interface instead.

Examples:
  host-chat server --key-file k &
  firmware-sim --nick sensor1 --server 127.0.0.1:12345 --key-file k --every 10 'temp 21.5 C'
  echo hello | firmware-sim --nick dev --server 127.0.0.1:12345 --key-file k --json";

/// The chat device application (no_std, smoltcp) running on the PC.
#[derive(Debug, Parser)]
#[command(name = "firmware-sim", version, after_help = AFTER_HELP)]
struct Cli {
    /// Nickname, 1 to 32 bytes.
    #[arg(long)]
    nick: String,

    /// The chat server, HOST:PORT.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:12345")]
    server: String,

    /// Room to join, 1 to 32 bytes.
    #[arg(long, default_value = "lobby")]
    room: String,

    /// Read the key from PATH (its first key) [default: the first key in $HOST_CHAT_KEY,
    /// else ~/.config/host-chat/key].
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,

    /// Send TEXT every SECONDS, first at once; `{N}` in TEXT is the reading's number (1,
    /// 2, ...), `{uptime}` the device's uptime in seconds.
    #[arg(long, num_args = 2, value_names = ["SECONDS", "TEXT"])]
    every: Option<Vec<String>>,

    /// Print one JSON object per event on standard output.
    #[arg(long)]
    json: bool,

    /// Use the Linux TUN interface IFACE (configured, up, with a route to the server)
    /// instead of the user-space bridge; needs the `tap` feature and CAP_NET_ADMIN.
    #[arg(long, value_name = "IFACE")]
    tap: Option<String>,

    /// The device's address on the TUN interface (with --tap).
    #[arg(
        long,
        value_name = "CIDR",
        default_value = "10.42.0.2/24",
        requires = "tap"
    )]
    device_ip: String,
}

/// A periodic reading: its period in milliseconds and its template.
#[derive(Debug)]
struct Every {
    period_ms: u64,
    text: String,
}

/// A device that can block until a packet arrives or the time is up.
trait Wait {
    fn wait_for(&mut self, timeout: Duration) -> io::Result<()>;
}

impl Wait for UdpBridge {
    fn wait_for(&mut self, timeout: Duration) -> io::Result<()> {
        self.wait(timeout)
    }
}

#[cfg(all(feature = "tap", target_os = "linux"))]
use firmware_sim::smoltcp::phy::{Medium, TunTapInterface, wait as wait_fd};

#[cfg(all(feature = "tap", target_os = "linux"))]
impl Wait for TunTapInterface {
    fn wait_for(&mut self, timeout: Duration) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        wait_fd(self.as_raw_fd(), Some(timeout.into()))
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(&cli) {
        eprintln!("firmware-sim: {e:#}");
        // The exit statuses of host-chat (chat_cli::exit).
        std::process::exit(i32::from(exit_code(&e)));
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    check_names(&cli.nick, &cli.room)?;
    let (key, warning) = keys::load(cli.key_file.as_deref())?;
    if let Some(warning) = warning {
        eprintln!("firmware-sim: {warning}");
    }
    let every = match &cli.every {
        Some(args) => {
            let [seconds, text] = args.as_slice() else {
                return Err(BadArgument("--every takes SECONDS and TEXT".into()).into());
            };
            let seconds: f64 = seconds
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s >= 0.001)
                .ok_or_else(|| BadArgument("--every: SECONDS must be a positive number".into()))?;
            Some(Every {
                period_ms: (seconds * 1000.0) as u64,
                text: text.clone(),
            })
        }
        None => None,
    };
    let server = cli
        .server
        .to_socket_addrs()
        .map_err(|e| BadArgument(format!("--server {}: cannot resolve it: {e}", cli.server)))?
        .next()
        .ok_or_else(|| BadArgument(format!("--server {}: the name has no address", cli.server)))?;

    if let Some(iface) = &cli.tap {
        return run_tap(cli, iface, server, key, every);
    }
    let device_ip = Ipv4Address::new(10, 42, 0, 2);
    let virtual_server = IpEndpoint::new(IpAddress::v4(10, 42, 0, 1), server.port());
    let bridge = UdpBridge::new(server, device_ip, virtual_server, 1500)
        .context("cannot open a UDP socket")?;
    let net = NetConfig {
        address: Ipv4Cidr::new(device_ip, 24),
        gateway: None,
        local_port: 0,
        server: virtual_server,
    };
    drive(cli, key, every, bridge, &net)
}

#[cfg(all(feature = "tap", target_os = "linux"))]
fn run_tap(
    cli: &Cli,
    iface: &str,
    server: SocketAddr,
    key: Key,
    every: Option<Every>,
) -> anyhow::Result<()> {
    let address: Ipv4Cidr = cli.device_ip.parse().ok().ok_or_else(|| {
        BadArgument("--device-ip: expected an IPv4 CIDR such as 10.42.0.2/24".into())
    })?;
    let SocketAddr::V4(server) = server else {
        return Err(BadArgument("--tap: the server must be an IPv4 address".into()).into());
    };
    let device = TunTapInterface::new(iface, Medium::Ip)
        .with_context(|| format!("cannot open TUN interface {iface}"))?;
    let server_ip: Ipv4Address = *server.ip();
    let net = NetConfig {
        address,
        gateway: (!address.contains_addr(&server_ip)).then(|| {
            // The host end of the TUN link: the first address of the subnet.
            let base = address.network().address().to_bits();
            Ipv4Address::from_bits(base.wrapping_add(1))
        }),
        local_port: 0,
        server: IpEndpoint::new(IpAddress::Ipv4(server_ip), server.port()),
    };
    drive(cli, key, every, device, &net)
}

#[cfg(not(all(feature = "tap", target_os = "linux")))]
fn run_tap(_: &Cli, _: &str, _: SocketAddr, _: Key, _: Option<Every>) -> anyhow::Result<()> {
    Err(BadArgument(
        "--tap: this build has no TUN support (build with `--features tap`, Linux only)".into(),
    )
    .into())
}

/// Lines of standard input, read on their own thread, kept in order until the node
/// takes them (empty lines skipped); ended at the end of input.
#[derive(Debug)]
struct StdinLines {
    lines: Receiver<String>,
    waiting: VecDeque<String>,
    eof: bool,
}

impl StdinLines {
    fn spawn() -> Self {
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            lines,
            waiting: VecDeque::new(),
            eof: false,
        }
    }

    /// Takes in what standard input has given so far.
    fn read(&mut self) {
        while !self.eof {
            match self.lines.try_recv() {
                Ok(line) => {
                    let line = line.trim_end_matches('\r');
                    if !line.is_empty() {
                        self.waiting.push_back(line.to_owned());
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.eof = true,
            }
        }
    }
}

impl Lines for StdinLines {
    fn peek(&mut self) -> Option<&str> {
        self.read();
        self.waiting.front().map(String::as_str)
    }

    fn take(&mut self) {
        self.waiting.pop_front();
    }

    fn ended(&self) -> bool {
        self.eof
    }
}

fn drive<D: Device + Wait>(
    cli: &Cli,
    key: Key,
    every: Option<Every>,
    device: D,
    net: &NetConfig,
) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    // The device's monotonic clock: zero at "reset", as on a board without an RTC.
    let clock = move || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut rng = StdRng::try_from_rng(&mut SysRng).context("cannot get randomness from the OS")?;
    let seed = rng.next_u64();
    let mut metadata = Metadata::new();
    let mut payload = Box::new(Payload::new());
    let buffers = Buffers {
        metadata: &mut metadata,
        payload: &mut payload,
    };
    let chat = ClientConfig::new(&cli.nick, &cli.room);
    // At the end of input (without --every) the device leaves once every line is
    // answered, or gives up after the grace, as `host-chat client` does.
    let behaviour = Behaviour {
        every: every.as_ref().map(|e| (e.period_ms, e.text.as_str())),
        leave_when_done: Some(GRACE_MS),
        ..Behaviour::default()
    };
    let node = Node::new(&chat, key, rng, clock(), behaviour, StdinLines::spawn())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut app =
        App::new(node, net, seed, device, clock, buffers).context("the device did not start")?;
    let mut out = Printer {
        json: cli.json,
        server: cli.server.clone(),
    };

    loop {
        app.poll(&mut out);
        if let Some(outcome) = app.node().outcome() {
            return match outcome.failure() {
                Some(failure) => Err(NotDelivered(failure.to_string()).into()),
                None => Ok(()),
            };
        }
        let now = app.now();
        // Standard input is looked at every 50 ms at least.
        let wake = app
            .poll_at()
            .unwrap_or(u64::MAX)
            .min(now.saturating_add(50));
        app.device_mut()
            .wait_for(Duration::from_millis(wake.saturating_sub(now)))
            .context("network")?;
    }
}

/// Prints the node's reports, as JSON lines or text.
#[derive(Debug)]
struct Printer {
    json: bool,
    server: String,
}

/// `HH:MM:SS` (UTC) of a Unix time.
fn clock_time(unix: u64) -> String {
    let secs = unix % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

impl Output for Printer {
    fn report(&mut self, report: &Report<'_>) {
        let no_answer = || {
            format!(
                "no answer from {} within 3 s: is `host-chat server` running there, with the same key?",
                self.server
            )
        };
        if self.json {
            // The shape every driver shares (firmware_sim::Report), plus the server.
            if let Some(ClientEvent::NoAnswer { .. }) = report.event() {
                eprintln!("{}", no_answer());
                println!(
                    "{{{},\"server\":{}}}",
                    report.json_fields(),
                    JsonStr(&self.server)
                );
            } else {
                println!("{}", report.json());
            }
            let _ = io::stdout().flush();
            return;
        }
        let event: &Event = match report.what {
            What::Event(event) => event,
            What::NotSent { text, error } => {
                return eprintln!("line not delivered ({}): {text}", NotSentReason(error));
            }
            // The failure, if any, is the program's error line.
            What::Sent { .. } | What::Finished(_) => return,
        };
        match event {
            ClientEvent::Message {
                nick,
                text,
                timestamp,
                ..
            } => println!("[{}] {nick}: {text}", clock_time(*timestamp)),
            ClientEvent::Presence {
                members,
                skipped,
                changes,
            } => {
                for (kind, nick) in changes.iter() {
                    println!("* {nick} {}", kind.as_str());
                }
                if *skipped > 0 {
                    println!("* {} more", count(*skipped, "change"));
                }
                eprintln!("{} in #{}", count(*members, "member"), report.room);
            }
            ClientEvent::Joined {
                members,
                rejoined,
                nick,
                ..
            } => eprintln!(
                "{} #{} as {nick} ({})",
                if *rejoined { "rejoined" } else { "joined" },
                report.room,
                count(*members, "member")
            ),
            ClientEvent::Delivered { .. } => {}
            ClientEvent::Refused { id, reason } => {
                eprintln!("the server refused line {id} ({})", reason.as_str())
            }
            ClientEvent::Undelivered { id, text } => {
                eprintln!("line {id} was not delivered: {text}")
            }
            ClientEvent::Notice { text } => eprintln!("server: {text}"),
            ClientEvent::Missed { from, to } => {
                eprintln!("missed {} ({from}..{to})", count(to - from, "message"))
            }
            ClientEvent::Members { total, names, .. } => eprintln!(
                "{}: {}",
                count(*total, "member"),
                names.iter().collect::<Vec<_>>().join(", ")
            ),
            ClientEvent::NoAnswer { .. } => eprintln!("{}", no_answer()),
            ClientEvent::ServerLost { silent_for } => eprintln!(
                "nothing heard from {} for {} s",
                self.server,
                silent_for.millis() / 1000
            ),
            ClientEvent::ServerBack => eprintln!("{} answers again", self.server),
            ClientEvent::Rejoining => eprintln!("the server lost our session: joining again"),
            ClientEvent::ClockSynced { unix_secs } => eprintln!(
                "clock set from the server: {} UTC (device clock at {} ms)",
                clock_time(*unix_secs),
                report.device_ms
            ),
            ClientEvent::Closed => eprintln!("left"),
        }
        let _ = io::stdout().flush();
    }
}
