//! `host-chat`: the host side of the encrypted UDP chat.
//!
//! The binary (`src/main.rs`) only calls [`main`]; everything else lives here so it can
//! be tested. Modules:
//!
//! - [`cli`]: the command line (clap), one [`cli::Command`] variant per subcommand;
//! - [`keys`]: where the keys come from and how they are parsed;
//! - [`commands`]: the token tools (`keygen`, `encrypt`, `decrypt`, `rotate`);
//! - [`chat`]: the chat (`server`, `client`, `demo`);
//! - [`cluster`]: `server --cluster`, rooms across servers through NATS JetStream;
//! - [`net`]: the mio event loop that drives chat_core's state machines;
//! - [`mmsg`]: datagrams in batches (`recvmmsg`/`sendmmsg`);
//! - [`bench`](mod@bench): the load generator (`bench`) and its plain baseline relay;
//! - [`ui`]: the terminal UI of `client --tui` and `demo --tui` (ratatui);
//! - [`error`]: failures and their exit status.

pub mod bench;
pub mod chat;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod error;
pub mod keys;
pub mod mmsg;
pub mod net;
pub mod ui;

use crate::cli::{Cli, Command};
use crate::commands::Io;
use clap::Parser as _;
use std::process::ExitCode;

/// Runs one parsed command line.
pub fn run(cli: &Cli, io: &mut Io<'_>) -> anyhow::Result<()> {
    match &cli.command {
        Command::Keygen => commands::keygen(io),
        Command::Encrypt(args) => commands::encrypt(&load_keys(&args.keys, io)?, io),
        Command::Decrypt(args) => {
            let keys = load_keys(&args.keys, io)?;
            let ttl = args.ttl.map(|ttl| commands::Ttl {
                ttl,
                clock_skew: args.clock_skew,
            });
            commands::decrypt(&keys, ttl, args.verbose, io)
        }
        Command::Rotate(args) => commands::rotate(&load_keys(&args.keys, io)?, args.verbose, io),
        Command::Server(args) => chat::server::run(args, io.key_env.take()),
        Command::Client(args) => chat::client::run_cli(args, io.key_env.take()),
        Command::Demo(args) => chat::demo::run(args),
        Command::Bench(args) => bench::run(args, io.key_env.take()),
        Command::BenchRelay(args) => bench::run_relay(args),
    }
}

/// The keys for the token tools: `--key-file`, else `HOST_CHAT_KEY`; they have no
/// default key file. A key file open to others is used, with a warning on stderr.
fn load_keys(args: &cli::KeyArgs, io: &mut Io<'_>) -> anyhow::Result<keys::Keys> {
    let source = keys::resolve(args.key_file.as_deref(), io.key_env.take(), None)?;
    let loaded = keys::load(&source, keys::Unprotected::Warn)?;
    if let Some(warning) = &loaded.warning {
        let _ = writeln!(io.stderr, "host-chat: {warning}");
    }
    Ok(loaded.keys)
}

/// The whole program: parses the arguments, runs the command on the real standard
/// streams, and on failure prints one line on stderr and returns the exit status of
/// [`error::exit_code`].
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Unlocked handles: the chat reads and writes them from several threads.
    let (mut stdin, mut stdout, mut stderr) =
        (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let mut io = Io {
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
        key_env: std::env::var_os(keys::ENV_VAR),
        clock: &commands::system_clock,
    };
    match run(&cli, &mut io) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(io.stderr, "host-chat: {err:#}");
            ExitCode::from(error::exit_code(&err))
        }
    }
}
