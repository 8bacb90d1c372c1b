//! The device application on QEMU's `mps2-an385` board (Cortex-M3): the LAN9118 NIC
//! behind QEMU's user-mode network (slirp), a real `host-chat server` on the host.
//!
//! ```text
//! qemu-system-arm -machine mps2-an385 -nographic -nic user,model=lan9118 \
//!     -semihosting-config enable=on,target=native -kernel IMAGE \
//!     -append "port=PORT key=BASE64KEY seed=64HEX [secs=N] [nick=NAME] [room=NAME]"
//! ```
//!
//! The board is 10.0.2.15/24, its default route slirp's gateway 10.0.2.2, which is the
//! host's 127.0.0.1: the server is 10.0.2.2:PORT. The key, the port and the seed come
//! from the semihosting command line (`-append`, read by `firmware_sim::config`), so one
//! image serves every server. The seed is 32 bytes from the host's CSPRNG (QEMU's
//! boards have no TRNG): the image refuses to start without one.
//!
//! It joins as `board` (room `lobby`), sends "hello from the board" and two readings,
//! and prints over semihosting one JSON object per line (`boot`, then the device's
//! reports: `joined`, `sent`, `delivered`, `message`, `clock_synced`, ..., `exit`,
//! then `stats`), and, for each member's line received, `board got: NICK: TEXT`. A line
//! "/exit" from the room makes it leave and end QEMU (SYS_EXIT): status 0 if it joined
//! and its lines reached the room (the node's `Outcome`), else 1; the end of `secs`
//! seconds of device time (default 120) ends it too, with status 1.

use crate::lan9118::{self, Lan9118};
use crate::{Csprng, Uptime, halt, qemu};
use chat_core::fernet::Key;
use chat_core::session::{ClientConfig, ClientEvent, JsonStr};
use core::fmt::{self, Write as _};
use cortex_m_semihosting::{debug, hio};
use firmware_sim::config::{self, Settings};
use firmware_sim::smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr};
use firmware_sim::{App, Behaviour, Buffers, Clock, NetConfig, Node, Output, Report, Script, What};
use rand_core::{Rng as _, SeedableRng as _};

/// QEMU slirp's fixed addresses.
const BOARD_IP: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
const GATEWAY: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
/// A locally administered address, if the NIC has none.
const FALLBACK_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x4d, 0x50, 0x53];
/// What the board says once it has joined.
const LINES: [&str; 3] = [
    "hello from the board",
    "reading 1: temp 21.5 C",
    "reading 2: temp 21.7 C",
];
/// What a room member sends to make the board leave.
const EXIT_LINE: &str = "/exit";
/// Device seconds before the board gives up, unless `secs=` says otherwise.
const DEFAULT_SECS: u64 = 120;

/// Semihosting stdout, a line at a time (one host call per line).
struct Out {
    stream: Option<hio::HostStream>,
    line: [u8; 512],
    len: usize,
}

impl fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Cut, never fail: a long line is still worth its start.
        let room = self.line.len().saturating_sub(self.len);
        let take = s.len().min(room);
        if let (Some(dst), Some(src)) = (
            self.line.get_mut(self.len..self.len + take),
            s.as_bytes().get(..take),
        ) {
            dst.copy_from_slice(src);
            self.len += take;
        }
        Ok(())
    }
}

impl Out {
    fn new() -> Self {
        Self {
            stream: hio::hstdout().ok(),
            line: [0; 512],
            len: 0,
        }
    }

    fn print(&mut self, args: fmt::Arguments<'_>) {
        self.len = 0;
        let _ = self.write_fmt(args);
        let _ = self.write_str("\n");
        if let (Some(stream), Some(line)) = (self.stream.as_mut(), self.line.get(..self.len)) {
            let _ = stream.write_all(line);
        }
    }
}

macro_rules! say {
    ($out:expr, $($arg:tt)*) => { $out.print(format_args!($($arg)*)) };
}

impl Output for Out {
    fn report(&mut self, report: &Report<'_>) {
        match report.what {
            What::Finished(_) => {
                let (stack, size, _) = qemu::stack_used();
                say!(
                    self,
                    r#"{{{},"stack_used":{stack},"stack_size":{size}}}"#,
                    report.json_fields()
                );
            }
            _ => say!(self, "{}", report.json()),
        }
        if let Some(ClientEvent::Message { nick, text, .. }) = report.event() {
            say!(self, "board got: {nick}: {text}");
        }
    }
}

fn fail(out: &mut Out, message: &str) -> ! {
    say!(
        out,
        "{}",
        firmware_sim::node::error_json(format_args!("{message}"))
    );
    say!(out, r#"{{"event":"exit","reason":"error","device_ms":0}}"#);
    debug::exit(debug::EXIT_FAILURE);
    halt()
}

/// Runs the board: never returns (QEMU ends at SYS_EXIT).
pub fn run(
    buffers: Buffers<'static>,
    rx: &'static mut [u8; lan9118::FRAME],
    tx: &'static mut [u8; lan9118::FRAME],
    cmdline: &'static mut [u8; 512],
) -> ! {
    let mut out = Out::new();
    let args = Settings::from_fields(config::words(qemu::cmdline(cmdline)));
    if let Some(name) = args.invalid {
        say!(out, r#"{{"event":"error","setting":{}}}"#, JsonStr(name));
        fail(
            &mut out,
            "a setting on the command line (qemu -append) is not valid",
        )
    }
    let Some(port) = args.port else {
        fail(&mut out, "no port=PORT on the command line (qemu -append)")
    };
    let Some(key) = args.key.and_then(|k| Key::from_base64(k).ok()) else {
        fail(
            &mut out,
            "no valid key=BASE64 on the command line (qemu -append)",
        )
    };
    // QEMU's boards have no TRNG: the host's CSPRNG seeds ours, or nothing starts.
    let Some(seed) = args.seed else {
        fail(
            &mut out,
            "no seed=64HEX on the command line (qemu -append): 32 bytes from the host's CSPRNG",
        )
    };
    let (nick, room) = (args.nick.unwrap_or("board"), args.room.unwrap_or("lobby"));
    let nic = match Lan9118::take_mps2(FALLBACK_MAC, rx, tx) {
        Ok(nic) => nic,
        Err(lan9118::InitError::NotFound { id_rev }) => {
            say!(out, r#"{{"event":"error","id_rev":"{id_rev:#010x}"}}"#);
            fail(
                &mut out,
                "no LAN9118 at 0x40200000: run with -machine mps2-an385",
            )
        }
        Err(_) => fail(&mut out, "the LAN9118 did not come up"),
    };
    let mac = nic.mac();
    let server = IpEndpoint::new(IpAddress::Ipv4(GATEWAY), port);
    say!(
        out,
        r#"{{"event":"boot","board":"mps2-an385","nic":"lan9118","id_rev":"{:#010x}","mac":"{}","ip":"{}/24","gateway":"{}","server":"{}","nick":{},"room":{}}}"#,
        nic.id_rev(),
        mac,
        BOARD_IP,
        GATEWAY,
        server,
        JsonStr(nick),
        JsonStr(room)
    );
    let net = NetConfig {
        address: Ipv4Cidr::new(BOARD_IP, 24),
        gateway: Some(GATEWAY),
        local_port: 0,
        server,
    };
    let mut rng = Csprng::from_seed(seed);
    let net_seed = rng.next_u64();
    let behaviour = Behaviour {
        exit_line: Some(EXIT_LINE),
        run_for_ms: Some(args.secs.unwrap_or(DEFAULT_SECS).saturating_mul(1000)),
        ..Behaviour::default()
    };
    let mut clock = Uptime::default();
    let chat = ClientConfig::new(nick, room);
    let node = Node::new(
        &chat,
        key,
        rng,
        clock.now_millis(),
        behaviour,
        Script::new(&LINES),
    );
    let app =
        node.and_then(|node| App::new_ethernet(node, &net, net_seed, (nic, mac), clock, buffers));
    let mut app = match app {
        Ok(app) => app,
        Err(e) => {
            say!(out, r#"{{"event":"error","message":"{}"}}"#, e);
            fail(&mut out, "the device application did not start")
        }
    };

    loop {
        app.poll(&mut out);
        if let Some(outcome) = app.node().outcome() {
            let stats = app.node().stats();
            let nic = app.device().counters;
            say!(
                out,
                r#"{{"event":"stats","sent":{},"received":{},"frames_rx":{},"frames_rx_dropped":{},"frames_tx":{}}}"#,
                stats.sent,
                stats.received,
                nic.rx,
                nic.rx_dropped,
                nic.tx
            );
            debug::exit(if outcome.is_success() {
                debug::EXIT_SUCCESS
            } else {
                debug::EXIT_FAILURE
            });
            halt()
        }
        // SysTick wakes us every millisecond (the NIC is polled).
        cortex_m::asm::wfi();
    }
}
