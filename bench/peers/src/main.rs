//! `peers`: host-chat against its peers.
//!
//! * `peers mqtt`: the MQTT load generator (rumqttc), against a private mosquitto
//!   (`--spawn-broker`) or a running broker: the same load and the same report as
//!   `host-chat bench`.
//! * `peers search -- COMMAND...`: the highest rate COMMAND's target sustains with
//!   nothing lost and delivery p99 under 100 ms (COMMAND is `host-chat bench ...` or
//!   `peers mqtt ...`).
//! * `peers table`: both searches at room sizes 4, 64, 250, 1000, one table with the ratio.
//! * `peers scale`: host-chat server and the plain relay at the same load, 10 to 10,000
//!   members: CPU per delivery, RSS.
//!
//! `bench/peers.sh` builds everything and runs the tables.

mod broker;
mod mqtt;
mod procfs;
mod report;
mod search;
mod tables;

use clap::{Parser, Subcommand};
use std::ffi::OsString;

#[derive(Debug, Parser)]
#[command(
    name = "peers",
    about = "host-chat against mosquitto and the plain relay"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// MQTT load generator: N clients on one topic at QoS 1, as host-chat bench's.
    Mqtt(mqtt::MqttArgs),
    /// The highest rate COMMAND's target sustains (COMMAND gets --rate, --messages,
    /// --drain, --time-limit and --json).
    Search {
        #[command(flatten)]
        options: search::SearchOptions,
        /// The load generator and its arguments, after `--`.
        #[arg(required = true, last = true, value_name = "COMMAND")]
        command: Vec<OsString>,
    },
    /// host-chat and mosquitto, highest sustained rate per room size, with the ratio.
    Table(tables::TableArgs),
    /// host-chat server and the plain relay at the same load, 10 to 10,000 members.
    Scale(tables::ScaleArgs),
}

fn main() {
    let cli = Cli::parse();
    let me: OsString = std::env::current_exe()
        .map(Into::into)
        .unwrap_or_else(|_| "peers".into());
    let result = match &cli.command {
        Commands::Mqtt(args) => mqtt::run(args),
        Commands::Search { options, command } => {
            let outcome = search::search(command, options, &mut |p| {
                eprintln!(
                    "at {}/s: {}",
                    p.rate,
                    p.failure.as_deref().unwrap_or("pass")
                );
            });
            let best = outcome.best.as_ref().and_then(|p| p.report.clone());
            println!(
                "{}",
                serde_json::json!({
                    "sustained": outcome.sustained,
                    "best": best,
                    "limit": outcome.limit.as_ref().map(|p| serde_json::json!({
                        "rate": p.rate, "failure": p.failure,
                    })),
                    "probes": outcome.probes.len(),
                })
            );
            Ok(())
        }
        Commands::Table(args) => tables::peers(args, &me),
        Commands::Scale(args) => tables::scale(args),
    };
    if let Err(e) = result {
        eprintln!("peers: {e:#}");
        std::process::exit(1);
    }
}
