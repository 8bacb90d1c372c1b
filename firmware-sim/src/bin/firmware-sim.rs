//! `firmware-sim`: the device application, with its real smoltcp stack, on the PC.
//!
//! The stack's IPv4/UDP packets go through a user-space bridge to a host UDP socket
//! (no root needed), or with `--tap IFACE` (feature `tap`, Linux) to a TUN interface.

use anyhow::{Context, bail};
use chat_core::fernet::Key;
use chat_core::session::{ClientConfig, ClientEvent, JsonStr};
use clap::Parser;
use firmware_sim::bridge::UdpBridge;
use firmware_sim::smoltcp::phy::Device;
use firmware_sim::smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr};
use firmware_sim::{
    App, Behaviour, Buffers, Event, Lines, Metadata, NetConfig, Node, Output, Payload, Report,
    What, keys,
};
use rand::rngs::{StdRng, SysRng};
use rand::{Rng, SeedableRng};
use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::Duration;

const AFTER_HELP: &str = "\
The device has no real-time clock: its clock starts at zero and it learns the time from
the server's first verified answer. Lines read from standard input are sent to the room;
at the end of input (without --every) the simulator waits for the server to take every
line, leaves the room and exits.

Keys: the first key of --key-file PATH (blank lines and # comments skipped), else the
first key of $HOST_CHAT_KEY. The device holds one key.

Network: the device's stack is at 10.42.0.2 and sees the server at 10.42.0.1 on the
server's port; a user-space bridge carries its UDP payloads to and from ADDR.

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

    /// Room to join.
    #[arg(long, default_value = "lobby")]
    room: String,

    /// Read the key from PATH [default: the first key in $HOST_CHAT_KEY].
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,

    /// Send TEXT every SECONDS, first at once; `{n}` in TEXT is the reading's number,
    /// `{uptime}` the device's uptime in seconds.
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
        std::process::exit(2);
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let key = keys::load(cli.key_file.as_deref()).map_err(anyhow::Error::msg)?;
    let every = match &cli.every {
        Some(args) => {
            let [seconds, text] = args.as_slice() else {
                bail!("--every takes SECONDS and TEXT");
            };
            let seconds: f64 = seconds
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s >= 0.001)
                .context("--every: SECONDS must be a positive number")?;
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
        .with_context(|| format!("cannot resolve {}", cli.server))?
        .next()
        .with_context(|| format!("{} has no address", cli.server))?;

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
    let address: Ipv4Cidr = cli
        .device_ip
        .parse()
        .ok()
        .context("--device-ip: expected an IPv4 CIDR such as 10.42.0.2/24")?;
    let SocketAddr::V4(server) = server else {
        bail!("--tap: the server must be an IPv4 address");
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
    bail!("--tap: this build has no TUN support (Linux only, feature `tap`)")
}

/// Lines of standard input, read on their own thread and handed to the node as it can
/// take them (empty lines skipped); finished at the end of input.
#[derive(Debug)]
struct StdinLines {
    lines: Receiver<String>,
    front: Option<String>,
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
            front: None,
            eof: false,
        }
    }
}

impl Lines for StdinLines {
    fn peek(&mut self) -> Option<&str> {
        while self.front.is_none() && !self.eof {
            match self.lines.try_recv() {
                Ok(line) => {
                    let line = line.trim_end_matches('\r');
                    if !line.is_empty() {
                        self.front = Some(line.to_owned());
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.eof = true,
            }
        }
        self.front.as_deref()
    }

    fn take(&mut self) {
        self.front = None;
    }

    fn is_finished(&self) -> bool {
        self.eof && self.front.is_none()
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
    // At the end of input (without --every) the device leaves once every line is taken.
    let behaviour = Behaviour {
        every: every.as_ref().map(|e| (e.period_ms, e.text.as_str())),
        leave_when_done: true,
        ..Behaviour::default()
    };
    let node = Node::new(&chat, key, rng, clock(), behaviour, StdinLines::spawn())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut app =
        App::new(node, net, seed, device, clock, buffers).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = Printer {
        json: cli.json,
        server: cli.server.clone(),
    };

    loop {
        app.poll(&mut out);
        if app.node().finished().is_some() {
            return Ok(());
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
            What::NotSent { error, .. } => return eprintln!("not sent: {error}"),
            What::Sent { .. } | What::Finished(_) => return,
        };
        match event {
            ClientEvent::Message {
                nick,
                text,
                notice: false,
                timestamp,
                ..
            } => println!("[{}] {nick}: {text}", clock_time(*timestamp)),
            ClientEvent::Message {
                nick,
                text,
                timestamp,
                ..
            } => println!("[{}] * {nick} {text}", clock_time(*timestamp)),
            ClientEvent::Joined {
                members, rejoined, ..
            } => eprintln!(
                "{} #{} as {} ({members} member{})",
                if *rejoined { "rejoined" } else { "joined" },
                report.room,
                report.nick,
                if *members == 1 { "" } else { "s" }
            ),
            ClientEvent::Delivered { .. } => {}
            ClientEvent::Refused { id, .. } => eprintln!("the server refused line {id}"),
            ClientEvent::Undelivered { id, .. } => eprintln!("line {id} was not delivered"),
            ClientEvent::Notice { text, .. } => eprintln!("server: {text}"),
            ClientEvent::Missed { from, to, .. } => {
                eprintln!("missed {} message(s) ({from}..{to})", to - from)
            }
            ClientEvent::NoAnswer { .. } => eprintln!("{}", no_answer()),
            ClientEvent::ServerLost { silent_for, .. } => eprintln!(
                "nothing heard from {} for {} s",
                self.server,
                silent_for.millis() / 1000
            ),
            ClientEvent::ServerBack => eprintln!("{} answers again", self.server),
            ClientEvent::Rejoining => eprintln!("the server lost our session: joining again"),
            ClientEvent::ClockSynced { unix_secs, .. } => eprintln!(
                "clock set from the server: {} UTC (device clock at {} ms)",
                clock_time(*unix_secs),
                report.device_ms
            ),
            ClientEvent::Closed => eprintln!("left"),
            // Anything else (member lists, ...) as its JSON members.
            other => eprintln!("{}", other.json_fields()),
        }
        let _ = io::stdout().flush();
    }
}
