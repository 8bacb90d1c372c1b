//! `firmware-embassy`: the device application on embassy-net, on the PC. embassy's std
//! executor runs the same driver (`firmware_embassy::run`) and node as the boards, over
//! a Linux TAP device (`embassy-net-tuntap`) instead of a W5500 or Wi-Fi.

use anyhow::{Context, bail};
use chat_core::fernet::Key;
use chat_core::session::{ClientConfig, JsonStr};
use clap::Parser;
use embassy_executor::{Executor, Spawner};
use embassy_net::{
    Config, IpAddress, IpEndpoint, Ipv4Cidr, Runner, StackResources, StaticConfigV4,
};
use embassy_net_tuntap::TunTapDevice;
use firmware_embassy::{Buffers, now_ms};
use firmware_sim::{Behaviour, Node, Report, Script, keys};
use rand::rngs::{StdRng, SysRng};
use rand::{Rng, SeedableRng};
use static_cell::StaticCell;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
The TAP device must exist and be up, with an address for the host on the device's subnet
(as root):
  ip tuntap add dev hc0 mode tap && ip addr add 10.42.0.1/24 dev hc0 && ip link set hc0 up

The device is then at --address on that link, with no real-time clock: its clock starts
at zero and it learns the time from the server's first verified answer. It sends the
--say lines in order, prints one JSON object per line for what happens (boot, sent,
joined, delivered, message, clock_synced, ..., exit), leaves when a room member sends
the exit line, and exits 0 then if it joined and every --say line reached the room (1
if not, if the session closed otherwise or --secs passed; 2 on a setup error).

Keys: exactly as `host-chat client` and `firmware-sim` read them: --key-file PATH, else
$HOST_CHAT_KEY, else the default key file ~/.config/host-chat/key. The device holds one
key: the first of the source.

Example:
  host-chat server --bind 10.42.0.1:12345 &
  firmware-embassy --tap hc0 --server 10.42.0.1:12345 --nick pc-board --say 'hello'";

/// The chat device application on embassy-net, over a Linux TAP device.
#[derive(Debug, Parser)]
#[command(name = "firmware-embassy", version, after_help = AFTER_HELP)]
struct Cli {
    /// The TAP device (needs CAP_NET_ADMIN, or a device made for this user).
    #[arg(long, value_name = "NAME")]
    tap: String,

    /// The device's address on the TAP link.
    #[arg(long, value_name = "CIDR", default_value = "10.42.0.2/24")]
    address: String,

    /// The router, for a server outside the device's subnet.
    #[arg(long, value_name = "IPV4")]
    gateway: Option<Ipv4Addr>,

    /// The chat server.
    #[arg(long, value_name = "IPV4:PORT")]
    server: SocketAddrV4,

    /// Nickname, 1 to 32 bytes.
    #[arg(long)]
    nick: String,

    /// Room to join.
    #[arg(long, default_value = "lobby")]
    room: String,

    /// Read the key from PATH (its first key) [default: the first key in $HOST_CHAT_KEY,
    /// else ~/.config/host-chat/key].
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,

    /// A line to send (repeat for more; sent once each, in order).
    #[arg(long = "say", value_name = "TEXT")]
    lines: Vec<String>,

    /// A room member's line that makes the device leave.
    #[arg(long, value_name = "TEXT", default_value = "/exit")]
    exit_line: String,

    /// Give up after SECS seconds of device time.
    #[arg(long, value_name = "SECS")]
    secs: Option<u64>,
}

/// Everything the device task needs, checked before the executor starts.
struct Setup {
    device: TunTapDevice,
    net: StaticConfigV4,
    server: IpEndpoint,
    key: Key,
    chat: ClientConfig<'static>,
    lines: &'static [&'static str],
    behaviour: Behaviour<'static>,
    tap: String,
}

fn setup(cli: Cli) -> anyhow::Result<Setup> {
    let (key, warning) = keys::load(cli.key_file.as_deref())?;
    if let Some(warning) = warning {
        eprintln!("firmware-embassy: {warning}");
    }
    let (ip, prefix) = cli
        .address
        .split_once('/')
        .and_then(|(ip, prefix)| Some((ip.parse::<Ipv4Addr>().ok()?, prefix.parse().ok()?)))
        .filter(|&(_, prefix): &(Ipv4Addr, u8)| prefix <= 32)
        .context("--address: expected an IPv4 CIDR such as 10.42.0.2/24")?;
    if cli.secs == Some(0) {
        bail!("--secs: give at least 1 second");
    }
    let device = TunTapDevice::new(&cli.tap).with_context(|| {
        format!(
            "cannot open TAP device {}: it must exist (ip tuntap add dev {} mode tap) and this user may need CAP_NET_ADMIN",
            cli.tap, cli.tap
        )
    })?;
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let lines: Vec<&'static str> = cli.lines.into_iter().map(leak).collect();
    let behaviour = Behaviour {
        exit_line: Some(leak(cli.exit_line)),
        run_for_ms: cli.secs.map(|secs| secs.saturating_mul(1000)),
        ..Behaviour::default()
    };
    Ok(Setup {
        device,
        net: StaticConfigV4 {
            address: Ipv4Cidr::new(ip, prefix),
            gateway: cli.gateway,
            dns_servers: Default::default(),
        },
        server: IpEndpoint::new(IpAddress::Ipv4(*cli.server.ip()), cli.server.port()),
        key,
        chat: ClientConfig::new(leak(cli.nick), leak(cli.room)),
        lines: Box::leak(lines.into_boxed_slice()),
        behaviour,
        tap: cli.tap,
    })
}

/// Prints the device's reports as JSON lines.
fn print(report: &Report<'_>) {
    println!("{}", report.json());
    let _ = std::io::stdout().flush();
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn device_task(spawner: Spawner, setup: Setup) {
    let code = match device(spawner, setup).await {
        Ok(None) => 0,
        Ok(Some(failure)) => {
            eprintln!("firmware-embassy: {failure}");
            1
        }
        Err(e) => {
            eprintln!("firmware-embassy: {e:#}");
            2
        }
    };
    std::process::exit(code)
}

/// Runs the device; its failure (`Outcome::failure`) once it has finished, if it failed.
async fn device(spawner: Spawner, setup: Setup) -> anyhow::Result<Option<String>> {
    static RESOURCES: StaticCell<StackResources<2>> = StaticCell::new();
    static BUFFERS: StaticCell<Buffers> = StaticCell::new();
    let mut rng = StdRng::try_from_rng(&mut SysRng).context("cannot get randomness from the OS")?;
    let (stack, runner) = embassy_net::new(
        setup.device,
        Config::ipv4_static(setup.net.clone()),
        RESOURCES.init(StackResources::new()),
        rng.next_u64(),
    );
    spawner.spawn(net_task(runner).context("cannot start the network task")?);
    stack.wait_config_up().await;
    println!(
        r#"{{"event":"boot","driver":"embassy-net","tap":{},"ip":"{}","server":"{}","nick":{},"room":{}}}"#,
        JsonStr(&setup.tap),
        setup.net.address,
        setup.server,
        JsonStr(setup.chat.nick),
        JsonStr(setup.chat.room)
    );
    let mut node = Node::new(
        &setup.chat,
        setup.key,
        rng,
        now_ms(),
        setup.behaviour,
        Script::new(setup.lines),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let buffers = BUFFERS.init(Buffers::new());
    firmware_embassy::run(stack, &mut node, setup.server, 0, buffers, &mut print)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let failure = node.outcome().and_then(|outcome| outcome.failure());
    Ok(failure.map(|failure| failure.to_string()))
}

fn main() {
    let setup = match setup(Cli::parse()) {
        Ok(setup) => setup,
        Err(e) => {
            eprintln!("firmware-embassy: {e:#}");
            std::process::exit(2);
        }
    };
    static EXECUTOR: StaticCell<Executor> = StaticCell::new();
    let executor = EXECUTOR.init(Executor::new());
    executor.run(move |spawner| {
        if let Ok(token) = device_task(spawner, setup) {
            spawner.spawn(token);
        } else {
            eprintln!("firmware-embassy: cannot start the device task");
            std::process::exit(2);
        }
    });
}
