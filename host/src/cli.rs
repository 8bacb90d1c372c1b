//! The command line: every subcommand, its options and its help text.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const TOP_HELP: &str = "\
Keys:
  A key is 44 characters of base64url (32 random bytes), the same format as Python's
  `cryptography` Fernet keys (the standard base64 alphabet, `+` and `/`, is read too).
  Every command that uses keys reads them from, in order:
    --key-file PATH   one key per line; the first makes new tokens, the others (up to 7)
                      are older keys still accepted. Blank lines and `#` comments are
                      ignored. Keep the file private (mode 600): a key file open to group
                      or others is warned about, and the server refuses it.
    HOST_CHAT_KEY     one or more keys separated by commas or spaces, primary first.
  The chat (server, client, bench, firmware-sim) then reads the default key file
  ~/.config/host-chat/key, which only `host-chat server` creates.

Chat:
  host-chat demo                          # a server and a client on this machine
  host-chat server                        # on one machine (port 12345)
  host-chat client 192.168.1.20:12345     # on the others, with the server's key

Examples:
  (umask 077; host-chat keygen > k)      # a private key file
  echo hi | host-chat encrypt --key-file k | host-chat decrypt --key-file k
  HOST_CHAT_KEY=$(host-chat keygen) host-chat encrypt < notes.txt > notes.token";

/// The top-level `--help` after the commands: keys, examples, the exit statuses.
fn top_help() -> String {
    format!("{TOP_HELP}\n\n{}", crate::error::EXIT_STATUS_HELP)
}

const SERVER_HELP: &str = "\
Keys:
  --key-file PATH, else HOST_CHAT_KEY, else the default key file
  $XDG_CONFIG_HOME/host-chat/key (~/.config/host-chat/key), created with a fresh key on
  first use (the server is the one command that creates it; it prints how to copy it).
  Every machine in the chat needs the same key: copy the file there or set
  HOST_CHAT_KEY. A key file open to group or others is refused (like ssh's private
  keys) unless --allow-unprotected-key-file. Datagrams made with another key are never
  answered; the log says once a minute per address that one is sending them.

Clocks:
  A token is refused when it is older than --ttl, or stamped more than --clock-skew
  ahead of this machine's clock, whatever the TTL. Members whose clocks run minutes
  fast need a larger --clock-skew here; minutes slow, a larger --ttl.

Log (standard error, times in UTC):
  joins, leaves and refusals as they happen; with --stats, the counters every SECONDS
  seconds; `kill -USR1 <pid>` prints them at once. Ctrl+C or SIGTERM stops the server.

Examples:
  host-chat server                          # all interfaces, port 12345
  host-chat server --bind 127.0.0.1:4000    # this machine only
  host-chat server --bind [::]:12345        # IPv6 (and IPv4 where the OS allows)
  host-chat server --stats 60               # counters every minute";

const CLIENT_HELP: &str = "\
In the chat:
  type a line and Enter to send it; each line is answered by the server
  (\"server: delivered as #12 to 3 members\"). /who lists the room, /quit (or end of
  input, Ctrl+D) leaves; so does Ctrl+C, saying what it still waits for, and a second
  Ctrl+C leaves at once, naming every line it drops. Times are shown in UTC.

With --tui (a full-screen UI; needs a terminal, e.g. over ssh or in tmux):
  Enter sends, Up/Down recall earlier lines, Left/Right/Home/End/Backspace/Delete edit
  (and Ctrl+A/E/U/K); PgUp/PgDn scroll, Esc back to the newest; F2 or Ctrl+W opens the
  wire view (each own line, its token, the server's answer and its token), Tab switches
  the pane PgUp/PgDn scroll; Ctrl+L repaints; /who, /quit, Ctrl+C (twice: at once).

Keys:
  the server's key: --key-file, else HOST_CHAT_KEY, else the default key file
  ~/.config/host-chat/key copied from the server's machine (a client never makes a key:
  one made here could not match the server's). With another key the server stays
  silent and the client says so after 3 s.

Exit status:
  0 when it joined and every line it was given reached the room; 1 when it never
  joined, was refused, or a line did not reach the room (each such line gets an
  `undelivered` event with --json). At the end of input (or /quit) it waits up to 5 s
  for the join, the server's answers to its lines and to /who, then leaves.

Examples:
  host-chat client                               # the server on this machine
  host-chat client 192.168.1.20:12345 --nick ann --room dev
  host-chat client chat.example.org:12345 --show-wire   # see the tokens
  host-chat client 192.168.1.20:12345 --tui      # the full-screen UI
  echo hello | host-chat client --json           # one JSON object per event";

const DEMO_HELP: &str = "\
The demo starts a private server on 127.0.0.1 (a random free port) with a fresh key that
is never saved (it reads no key file and writes none), and joins it as a client showing
every token on the wire. Another terminal can join with the command it prints (with
--tui, at the top of the screen, on rows that paste back as one command). The server
stops when the demo ends. Exit status as for `host-chat client`.

Examples:
  host-chat demo
  host-chat demo --nick ann --no-wire
  host-chat demo --tui                    # full screen; F2 shows or hides the wire";

const KEYGEN_HELP: &str = "\
Examples:
  (umask 077; host-chat keygen > k)      # a private key file
  export HOST_CHAT_KEY=$(host-chat keygen)
  (umask 077; { host-chat keygen; cat k; } > k.new) && mv k.new k   # new primary first";

const ENCRYPT_HELP: &str = "\
Examples:
  echo hi | host-chat encrypt --key-file k | host-chat decrypt --key-file k
  host-chat encrypt --key-file k < photo.jpg > photo.token";

const DECRYPT_HELP: &str = "\
Examples:
  echo hi | host-chat encrypt --key-file k | host-chat decrypt --key-file k
  host-chat decrypt --key-file k --ttl 60 < msg.token   # refuse tokens over a minute old";

const ROTATE_HELP: &str = "\
Examples:
  (umask 077; { host-chat keygen; cat k; } > k.new) && mv k.new k   # new primary, old kept
  host-chat rotate --key-file k < old.token > new.token
  host-chat decrypt --key-file k < new.token";

/// Encrypted chat over UDP, and tools for its Fernet tokens.
///
/// Messages are Fernet tokens (AES-128-CBC + HMAC-SHA256, base64url), interoperable
/// with every other Fernet implementation, e.g. Python's `cryptography`.
#[derive(Debug, Parser)]
#[command(name = "host-chat", version, after_help = top_help())]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the token tools read their keys.
#[derive(Debug, Args, Clone, Default)]
pub struct KeyArgs {
    /// Read the keys from PATH: one per line, the first one makes new tokens [default:
    /// the keys in $HOST_CHAT_KEY].
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
}

/// Where the chat reads its keys.
#[derive(Debug, Args, Clone, Default)]
pub struct ChatKeyArgs {
    /// Read the keys from PATH: one per line, the first one makes new tokens [default:
    /// the keys in $HOST_CHAT_KEY, else ~/.config/host-chat/key].
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a new random key.
    ///
    /// The key comes from the operating system's random number generator and is printed
    /// with a newline, ready for a key file or HOST_CHAT_KEY.
    #[command(after_help = KEYGEN_HELP)]
    Keygen,

    /// Encrypt all of standard input into a token.
    ///
    /// The input is taken as raw bytes (up to 64 MiB), untouched; the token, stamped with
    /// the current time and made with the primary key, is printed with a newline.
    #[command(after_help = ENCRYPT_HELP)]
    Encrypt(EncryptArgs),

    /// Decrypt a token read from standard input.
    ///
    /// Whitespace around the token is ignored, and a token in the standard base64
    /// alphabet (`+` and `/` for `-` and `_`) is read too, as Python's `cryptography`
    /// reads it. Exactly the message bytes are written to standard output, nothing
    /// added. Any key of the ring may have made the token.
    #[command(after_help = DECRYPT_HELP)]
    Decrypt(DecryptArgs),

    /// Re-encrypt a token under the primary key, keeping its timestamp.
    ///
    /// Reads a token made with any key of the ring (expired or not) and prints the same
    /// message, with the same timestamp, as a token of the primary key, with a newline.
    /// Like Python's `MultiFernet.rotate`.
    #[command(after_help = ROTATE_HELP)]
    Rotate(RotateArgs),

    /// Run a chat server: relays every line to the members of its room.
    ///
    /// Prints the addresses other machines can use to reach it, then logs joins, leaves
    /// and refusals. Members that stay silent are dropped after --member-timeout.
    #[command(after_help = SERVER_HELP)]
    Server(ServerArgs),

    /// Join a chat server: lines typed on standard input go to the room, the room's
    /// messages are printed.
    #[command(after_help = CLIENT_HELP)]
    Client(ClientArgs),

    /// Try the chat on this machine: a private server and a client, no setup needed.
    #[command(after_help = DEMO_HELP)]
    Demo(DemoArgs),

    /// Measure a server: N clients send M messages; throughput, latency, losses.
    #[command(after_help = crate::bench::HELP)]
    Bench(crate::bench::BenchArgs),

    /// Run the plain relay (no cryptography) that `bench --mode plain` measures, as the
    /// baseline the server is compared with.
    BenchRelay(crate::bench::RelayArgs),
}

/// The default server port.
pub const DEFAULT_PORT: u16 = 12345;

/// Options both chat ends share.
#[derive(Debug, Args, Clone, Copy)]
pub struct WireArgs {
    /// Largest datagram sent or accepted, in bytes (the token's length), 200 to 65507.
    /// Use the same value on every machine.
    #[arg(long, value_name = "BYTES", default_value_t = chat_core::session::DEFAULT_MAX_DATAGRAM,
          value_parser = parse_max_datagram)]
    pub max_datagram: usize,

    /// Refuse tokens made more than SECONDS ago, 1 to 86400: replays, stale lines, and
    /// senders whose clock is behind by more.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub ttl: u64,

    /// Accept tokens stamped up to SECONDS ahead of this machine's clock, 0 to 86400,
    /// whatever the TTL: senders whose clock is ahead.
    #[arg(long, value_name = "SECONDS", default_value_t = chat_core::fernet::MAX_CLOCK_SKEW,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub clock_skew: u64,
}

impl Default for WireArgs {
    /// The defaults `--help` shows.
    fn default() -> Self {
        Self {
            max_datagram: chat_core::session::DEFAULT_MAX_DATAGRAM,
            ttl: 60,
            clock_skew: chat_core::fernet::MAX_CLOCK_SKEW,
        }
    }
}

fn parse_max_datagram(text: &str) -> Result<usize, String> {
    let value: usize = text.parse().map_err(|e| format!("{e}"))?;
    if (200..=65_507).contains(&value) {
        Ok(value)
    } else {
        Err("must be from 200 to 65507 bytes".to_owned())
    }
}

/// Options of `server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The address and port to listen on (IPv4 or IPv6, or a host name such as localhost,
    /// e.g. 0.0.0.0:12345, [::]:12345, localhost:4000, 127.0.0.1:0 for any free port); a
    /// bare port number means all IPv4 interfaces.
    // This text is the --help text: "[::]" is an address there, not a rustdoc link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:12345")]
    pub bind: String,

    #[command(flatten)]
    pub keys: ChatKeyArgs,

    /// Use a key file that group or others may read (mode 0644...); without this the
    /// server refuses it, as ssh refuses such a private key.
    #[arg(long)]
    pub allow_unprotected_key_file: bool,

    /// Print the counters every SECONDS seconds, 1 or more (also on SIGUSR1).
    #[arg(long, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stats: Option<u64>,

    /// Drop members not heard from for SECONDS seconds, 1 to 86400 (clients ping every
    /// 5 s: below 15 a single lost ping drops a quiet member). A member that comes back later rejoins where it was, if its messages are
    /// still in the history.
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub member_timeout: u64,

    /// The most members at once, over all rooms, 1 to 100000. Memory is reserved for
    /// them at start (about 1.2 KiB each, see README "Sizing a server").
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_members: u32,

    /// The most rooms at once, 1 to 10000.
    #[arg(long, value_name = "N", default_value_t = 1_000,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_rooms: u32,

    /// Room messages each room keeps for members that have not received them yet, 16 to
    /// 4096 (a member away for longer misses what is older, and is told exactly what).
    /// Each room also keeps at most N × 256 bytes of them.
    #[arg(long, value_name = "N", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(16..=4_096))]
    pub history: u32,

    #[command(flatten)]
    pub wire: WireArgs,

    /// Serve the rooms together with other servers through NATS JetStream (its nodes as
    /// nats://HOST:PORT, comma-separated): every server delivers the same lines in the same
    /// order, and clients given several servers move to another when theirs fails
    /// (README "Several servers"). Without it the server works alone.
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    pub cluster: Vec<String>,

    /// With --cluster: copies of each room's stream in the NATS cluster, 1 to 5 (3 on a
    /// three-node cluster; a stream's replicas cannot outnumber the nodes).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=5))]
    pub cluster_replicas: u8,

    /// With --cluster: a room's lines older than SECONDS leave the broker, 60 to
    /// 31536000 (a year); members away longer are told what they missed.
    #[arg(long, value_name = "SECONDS", default_value_t = 604_800,
          value_parser = clap::value_parser!(u64).range(60..=31_536_000))]
    pub cluster_max_age: u64,

    /// With --cluster: a room's stream keeps at most MIB mebibytes, its oldest lines
    /// leaving first, 1 to 1048576.
    #[arg(long, value_name = "MIB", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub cluster_max_mib: u64,

    /// Print the bound port alone on the first line of standard output, for scripts: with
    /// `--bind 127.0.0.1:0` the system picks a free port, and this says which.
    #[arg(long)]
    pub print_port: bool,
}

/// Options of `client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server: IP:PORT, HOSTNAME:PORT, an IP or host name alone (port 12345), or a
    /// port alone (this machine, 127.0.0.1); several, comma-separated, for servers of one
    /// cluster (`server --cluster`): the first is used, and the next when it stops
    /// answering (README "Several servers").
    #[arg(value_name = "SERVER", default_value = "127.0.0.1:12345")]
    pub server: String,

    #[command(flatten)]
    pub keys: ChatKeyArgs,

    #[command(flatten)]
    pub chat: ChatArgs,

    #[command(flatten)]
    pub wire: WireArgs,
}

/// What a chat client shows, and as whom.
#[derive(Debug, Args, Clone)]
pub struct ChatArgs {
    /// Your name in the room, 1 to 32 bytes [default: $USER, else "guest"].
    #[arg(long, value_name = "NAME")]
    pub nick: Option<String>,

    /// The room to join, 1 to 32 bytes; rooms are created on first join.
    #[arg(long, value_name = "NAME", default_value = "lobby")]
    pub room: String,

    /// For each own line, also print the token sent and the server's answer, decrypted
    /// and as a token.
    #[arg(long)]
    pub show_wire: bool,

    /// Print one JSON object per line for every event, on standard output, instead of
    /// the text for people (errors too, as {"event":"error",...}).
    #[arg(long)]
    pub json: bool,

    /// A full-screen terminal UI: the conversation, an input line with history, a status
    /// bar, and the wire view (F2) with every own line's tokens.
    #[arg(long, conflicts_with = "json")]
    pub tui: bool,
}

/// Options of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Your name in the room, 1 to 32 bytes [default: $USER, else "guest"].
    #[arg(long, value_name = "NAME")]
    pub nick: Option<String>,

    /// The room to join, 1 to 32 bytes.
    #[arg(long, value_name = "NAME", default_value = "lobby")]
    pub room: String,

    /// Do not show the tokens on the wire.
    #[arg(long)]
    pub no_wire: bool,

    /// Print one JSON object per event instead of text.
    #[arg(long)]
    pub json: bool,

    /// A full-screen terminal UI (the wire view, F2, open unless --no-wire).
    #[arg(long, conflicts_with = "json")]
    pub tui: bool,
}

/// Options of `encrypt`.
#[derive(Debug, Args)]
pub struct EncryptArgs {
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Options of `decrypt`.
#[derive(Debug, Args)]
pub struct DecryptArgs {
    #[command(flatten)]
    pub keys: KeyArgs,

    /// Refuse tokens made more than SECONDS ago [default: any age].
    #[arg(long, value_name = "SECONDS")]
    pub ttl: Option<u64>,

    /// With --ttl: accept tokens stamped up to SECONDS ahead of this machine's clock, 0
    /// to 86400, whatever the TTL.
    #[arg(long, value_name = "SECONDS", requires = "ttl",
          default_value_t = chat_core::fernet::MAX_CLOCK_SKEW,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub clock_skew: u64,

    /// Say on standard error which key opened the token.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Options of `rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub keys: KeyArgs,

    /// Say on standard error which key opened the old token.
    #[arg(short, long)]
    pub verbose: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses() {
        let cli = Cli::try_parse_from(["host-chat", "decrypt", "--ttl", "60", "--key-file", "k"])
            .unwrap();
        let Command::Decrypt(args) = cli.command else {
            panic!("not decrypt")
        };
        assert_eq!(args.keys.key_file, Some(PathBuf::from("k")));
        assert_eq!(
            (args.ttl, args.clock_skew, args.verbose),
            (Some(60), 60, false)
        );
        // The options of a command are its own: keygen and demo take no key.
        assert!(Cli::try_parse_from(["host-chat", "keygen", "--key-file", "k"]).is_err());
        assert!(Cli::try_parse_from(["host-chat", "demo", "--key-file", "k"]).is_err());
        assert!(Cli::try_parse_from(["host-chat", "decrypt", "--clock-skew", "5"]).is_err());
        let cli = Cli::try_parse_from(["host-chat", "server"]).unwrap();
        let Command::Server(args) = cli.command else {
            panic!("not a server")
        };
        assert_eq!(args.bind, format!("0.0.0.0:{DEFAULT_PORT}"));
        assert!(Cli::try_parse_from(["host-chat", "decrypt", "--ttl", "-1"]).is_err());
        let cli = Cli::try_parse_from(["host-chat", "client", "--nick", "ann"]).unwrap();
        let Command::Client(args) = cli.command else {
            panic!("not a client")
        };
        assert_eq!(args.server, "127.0.0.1:12345");
        assert_eq!(args.chat.room, "lobby");
        assert_eq!(args.wire.max_datagram, 1232);
        assert!(Cli::try_parse_from(["host-chat", "server", "--max-datagram", "10"]).is_err());
    }
}
