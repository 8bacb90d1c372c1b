//! The flags of `bench` and of the hidden `bench-relay`, and `bench --help`'s text after
//! them.

use crate::cli::ChatKeyArgs;
use clap::{Args, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

/// `host-chat bench --help`, after the options.
pub const HELP: &str = "\
Output:
  a table (or one JSON object with --json): lines sent and accepted per second,
  deliveries per second (fan-out), latency percentiles from send() to each member's
  delivery and to the sender's receipt, losses and retransmissions; with --spawn-server
  also the server's CPU time per delivery and its memory (RSS), and how busy the
  generator itself was. A progress line is drawn on standard error when it is a terminal.
  A run never hangs: it stops when nothing has arrived for --drain seconds (or at
  --time-limit) and reports what was lost; if not every client gets in, it says why and
  exits with status 1 (the JSON object then has \"error\").

Load:
  closed loop (default): every client keeps its window full (--window).
  open loop (--rate R): R lines per second in all, round-robin over the clients.
  Latency is from send() (a line waits for room in its client's window before it is
  sent).

Examples:
  host-chat bench --spawn-server                     # a private server, 4 clients
  host-chat bench --spawn-server -c 16 -n 100000 --rate 20000
  host-chat bench --spawn-server -c 1000 -n 500 --rate 50        # one room of 1,000
  host-chat bench --spawn-server -c 10000 --rooms 1000 -n 20000 --rate 2000
  host-chat bench --spawn-server -c 10000 --rooms 1000 \\
      --server-arg=--max-members --server-arg=10000              # flags for the server
  host-chat bench --mode plain --spawn-server -c 100 --rate 200  # the plain relay
  host-chat bench 192.168.1.20:12345 -c 8            # a running server, with its key
  host-chat bench --mode legacy --spawn-server python   # bench/python_relay.py

  The highest rate a server sustains (nothing lost, p99 under 100 ms), and the same for
  mosquitto: bench/peers.sh (see BENCHMARKS.md).";

/// Most clients one run drives.
pub const MAX_CLIENTS: u32 = 10_000;

/// What the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The chat protocol (chat_core `Client`): reliable, acknowledged, fan-out = room size.
    Framed,
    /// Bare-text Fernet tokens (the original Python chat): fan-out N - 1, no retries.
    Legacy,
    /// Bare text without cryptography, for `host-chat bench-relay --plain`.
    Plain,
}

/// Which server `--spawn-server` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpawnKind {
    /// `host-chat bench-relay --plain` for `--mode plain`, else `host-chat server`.
    Auto,
    /// `host-chat server`.
    Host,
    /// `host-chat bench-relay --plain`.
    Plain,
    /// `python3 bench/python_relay.py` (see --python-relay); `--mode legacy` only.
    Python,
}

/// Options of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The server: IP:PORT or HOST:PORT [default: 127.0.0.1:12345, or the spawned one];
    /// several, comma-separated, for servers of one cluster: client i uses server i mod
    /// their number.
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,

    /// With --spawn-server (host-chat's): start N servers, 1 to 16, each with the
    /// --server-arg options (give them `--cluster nats://...` to make one cluster), and
    /// spread the clients over them.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=16))]
    pub servers: u8,

    /// Clients, 1 to 10000, each on its own socket (the open-files limit is raised to
    /// fit them).
    #[arg(long, short = 'c', value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CLIENTS)))]
    pub clients: u32,

    /// Rooms the clients are spread over, at most one per client: client i joins room i
    /// mod R (`bench` when R is 1, else `bench-0` ... `bench-{R-1}`). Framed and plain
    /// modes.
    #[arg(long, value_name = "R", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CLIENTS)))]
    pub rooms: u32,

    /// Messages to send in all, 1 to 50000000, spread evenly over the clients.
    #[arg(long, short = 'n', value_name = "M", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=50_000_000))]
    pub messages: u64,

    /// Bytes of text per message, 24 to 810.
    #[arg(long, value_name = "B", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(24..=810))]
    pub size: u16,

    /// Open loop: messages per second in all, round-robin over the clients [default:
    /// closed loop, as fast as the clients' windows allow].
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,

    /// What the clients speak.
    #[arg(long, value_enum, default_value_t = Mode::Framed)]
    pub mode: Mode,

    /// Start a private server on 127.0.0.1 (fresh key) and measure it.
    #[arg(long, value_enum, value_name = "KIND", num_args = 0..=1,
          default_missing_value = "auto")]
    pub spawn_server: Option<SpawnKind>,

    /// One more argument for the spawned server, after its own (repeat it:
    /// `--server-arg=--max-members --server-arg=10000`).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub server_arg: Vec<OsString>,

    /// The Python relay script, for `--spawn-server python`.
    #[arg(long, value_name = "PATH", default_value = "bench/python_relay.py")]
    pub python_relay: PathBuf,

    /// Closed loop: lines in flight per client, 1 to 1024, sent and awaiting the server's
    /// answer. Framed clients hold at most 16 (their outbox: more is the same as 16); the
    /// server grants them at most 16 too. When senders offer a room more than its history
    /// can take, the server answers Busy and they wait and slow down [default: 16 framed,
    /// 8 legacy and plain].
    #[arg(long, short = 'P', visible_alias = "pipeline", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub window: Option<u16>,

    /// Seconds without anything arriving after which the run stops (what is missing is
    /// lost).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub drain: u64,

    /// Stop the run this many seconds after the first line, whatever is still on its way
    /// [default: no limit].
    #[arg(long, value_name = "SECONDS")]
    pub time_limit: Option<u64>,

    /// Start the load as soon as every client is in, while the server may still be
    /// announcing the joins [default: once nothing has arrived for 100 ms].
    #[arg(long)]
    pub no_settle: bool,

    /// Print one JSON object with the results instead of the table.
    #[arg(long)]
    pub json: bool,

    /// The server's keys, for a server that is already running.
    #[command(flatten)]
    pub keys: ChatKeyArgs,
}

/// Options of the hidden `bench-relay`.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// A relay without cryptography: bare text in, receipts and fan-out out.
    #[arg(long, required = true)]
    pub plain: bool,

    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:12346")]
    pub bind: String,

    /// Print the bound port alone on the first line of standard output.
    #[arg(long)]
    pub print_port: bool,
}
