//! `host-chat demo`: a private server (this same executable, as a child process) and an
//! interactive client attached to it, sharing a fresh key that is never saved.

use super::child::{Log, ServerChild};
use super::client::{self, Intro, Options};
use crate::cli::{ChatArgs, DemoArgs, WireArgs};
use crate::keys::{self, Ring};
use crate::net;
use crate::ui::Banner;
use anyhow::Context as _;
use chat_core::fernet::KEY_TEXT_LEN;
use std::process::Command;
use zeroize::Zeroizing;

/// `host-chat demo`.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    if args.tui {
        crate::ui::check_terminal()?;
    }
    let key = super::fresh_key().map_err(anyhow::Error::msg)?;
    let mut text = Zeroizing::new([0u8; KEY_TEXT_LEN]);
    let key_text = Zeroizing::new(key.to_base64(&mut text).to_owned());
    let ring = Ring::new(key);

    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let mut cmd = Command::new(&exe);
    cmd.args(["server", "--bind", "127.0.0.1:0", "--print-port"]);
    // Under --tui, the server's log would scribble over the screen.
    let log = if args.tui { Log::Discard } else { Log::Show };
    let (server, addr) = ServerChild::start(cmd, Some(key_text.as_str()), log)?;
    // The command that joins from another terminal, one shell word each.
    let join = [
        format!("{}={}", keys::ENV_VAR, key_text.as_str()),
        keys::shell_word(&exe.display().to_string()),
        "client".to_owned(),
        addr.to_string(),
        "--nick".to_owned(),
        "someone".to_owned(),
    ];
    let mut intro = Intro::default();
    if args.tui {
        intro.lines.push(format!(
            "host-chat demo: a private server on {addr} with a fresh key (never saved); the \
             command at the top joins it from another terminal on this machine"
        ));
        intro.banner = Some(Banner {
            title: "To join from another terminal (copy every row):".to_owned(),
            words: join.to_vec(),
        });
    } else if args.json {
        net::out(
            &serde_json::json!({"event": "demo", "server": addr.to_string(),
                                "server_pid": server.id(), "join": join.join(" ")})
            .to_string(),
        );
    } else {
        net::err(&format!(
            "host-chat demo: a private server on {addr} with a fresh key (never saved), and \
             you in it. To join from another terminal on this machine:\n  {}",
            join.join(" ")
        ));
    }
    let options = Options {
        server: addr,
        server_name: addr.to_string(),
        fallbacks: Vec::new(),
        chat: ChatArgs {
            nick: args.nick.clone(),
            room: args.room.clone(),
            show_wire: !args.no_wire,
            json: args.json,
            tui: args.tui,
        },
        wire: WireArgs::default(),
    };
    let result = client::run_with(ring, &options, &intro);
    drop(server);
    if !args.json {
        net::err("host-chat demo: server stopped");
    }
    result
}
