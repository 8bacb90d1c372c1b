//! The device application on QEMU's `mps2-an385` board (Cortex-M3): the LAN9118 NIC
//! behind QEMU's user-mode network (slirp), a real `host-chat server` on the host.
//!
//! ```text
//! qemu-system-arm -machine mps2-an385 -nographic -nic user,model=lan9118 \
//!     -semihosting-config enable=on,target=native -kernel IMAGE \
//!     -append "port=PORT key=BASE64KEY [seed=N] [secs=N] [nick=NAME] [room=NAME]"
//! ```
//!
//! The board is 10.0.2.15/24, its default route slirp's gateway 10.0.2.2, which is the
//! host's 127.0.0.1: the server is 10.0.2.2:PORT. The key and the port come from the
//! semihosting command line (`-append`), so one image serves every server.
//!
//! It joins as `board` (room `lobby`), sends "hello from the board" and two readings,
//! and prints over semihosting one JSON object per line for what happens (`boot`,
//! `joined`, `sent`, `delivered`, `message`, `clock_synced`, ..., `exit`), and, for each
//! member's line received, `board got: NICK: TEXT`. A line "/exit" from the room makes
//! it leave and end QEMU (SYS_EXIT, status 0); so does the end of `secs` seconds of
//! device time (default 120), with status 1.

use crate::lan9118::{self, Lan9118};
use crate::{BoardRng, Uptime, halt, qemu};
use chat_core::fernet::Key;
use chat_core::session::{ClientConfig, ClientEvent, ClientState, JsonStr, SendError};
use core::fmt::{self, Write as _};
use cortex_m_semihosting::{debug, hio};
use firmware_sim::smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr};
use firmware_sim::{App, Buffers, NetConfig, TEXT_LEN};

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
/// How long leaving may take before the board exits anyway, device milliseconds.
const LEAVE_MS: u64 = 8_000;

/// The semihosting command line, parsed.
struct Args<'a> {
    port: Option<u16>,
    key: Option<&'a str>,
    seed: u64,
    secs: u64,
    nick: &'a str,
    room: &'a str,
}

impl<'a> Args<'a> {
    fn parse(line: &'a str) -> Self {
        let mut args = Self {
            port: None,
            key: None,
            seed: 0,
            secs: 120,
            nick: "board",
            room: "lobby",
        };
        // The first word is the image's path; words without '=' are ignored.
        for (name, value) in line
            .split_ascii_whitespace()
            .filter_map(|w| w.split_once('='))
        {
            match name {
                "port" => args.port = value.parse().ok(),
                "key" => args.key = Some(value),
                "seed" => args.seed = value.parse().unwrap_or(0),
                "secs" => args.secs = value.parse().unwrap_or(args.secs),
                "nick" => args.nick = value,
                "room" => args.room = value,
                _ => {}
            }
        }
        args
    }
}

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

/// NOT A SECURE SEED: the host's clock, SysTick's count, and what the command line
/// passes (run-qemu.sh and the test pass 64 bits from the host's CSPRNG), mixed. It
/// only makes IVs and session ids differ between runs of the emulator; see
/// [`BoardRng`] for what a real board needs.
fn seed(from_host: u64) -> u64 {
    let mut x = from_host
        ^ qemu::host_time().rotate_left(32)
        ^ u64::from(cortex_m::peripheral::SYST::get_current());
    // splitmix64's finaliser; xorshift needs a non-zero state.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    if x == 0 { 0x9E37_79B9_7F4A_7C15 } else { x }
}

/// What the event handler asks of the main loop.
#[derive(Default)]
struct Flags {
    joined: bool,
    exit_asked: bool,
    closed: bool,
}

fn exit(out: &mut Out, reason: &str, now: u64, ok: bool) -> ! {
    let (stack, _, _) = qemu::stack_used();
    say!(
        out,
        r#"{{"event":"exit","reason":{},"device_ms":{now},"stack_used":{stack}}}"#,
        JsonStr(reason)
    );
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    halt()
}

fn fail(out: &mut Out, message: &str) -> ! {
    say!(out, r#"{{"event":"error","message":{}}}"#, JsonStr(message));
    exit(out, "error", 0, false)
}

/// Runs the board: never returns (QEMU ends at SYS_EXIT).
pub fn run(
    buffers: Buffers<'static>,
    rx: &'static mut [u8; lan9118::FRAME],
    tx: &'static mut [u8; lan9118::FRAME],
) -> ! {
    let mut out = Out::new();
    let mut cmdline = [0u8; 512];
    let args = Args::parse(qemu::cmdline(&mut cmdline));
    let Some(port) = args.port.filter(|&p| p != 0) else {
        fail(&mut out, "no port=PORT on the command line (qemu -append)")
    };
    let Some(key) = args.key.and_then(|k| Key::from_base64(k).ok()) else {
        fail(
            &mut out,
            "no valid key=BASE64 on the command line (qemu -append)",
        )
    };
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
        JsonStr(args.nick),
        JsonStr(args.room)
    );
    let net = NetConfig {
        address: Ipv4Cidr::new(BOARD_IP, 24),
        gateway: Some(GATEWAY),
        local_port: 0,
        server,
    };
    let mut app = match App::new_ethernet(
        &ClientConfig::new(args.nick, args.room),
        &net,
        key,
        BoardRng(seed(args.seed)),
        (nic, mac),
        Uptime::default(),
        buffers,
    ) {
        Ok(app) => app,
        Err(e) => {
            say!(out, r#"{{"event":"error","message":"{}"}}"#, e);
            exit(&mut out, "error", 0, false)
        }
    };

    let deadline = args.secs.saturating_mul(1000);
    let mut next_line = 0;
    let mut flags = Flags::default();
    let mut leaving_since: Option<u64> = None;
    loop {
        let now = app.now().millis();
        while flags.joined && leaving_since.is_none() {
            let Some(text) = LINES.get(next_line) else {
                break;
            };
            match app.send(text) {
                Ok(id) => {
                    say!(
                        out,
                        r#"{{"event":"sent","id":{id},"text":{}}}"#,
                        JsonStr(text)
                    );
                    next_line += 1;
                }
                Err(SendError::QueueFull) => break,
                Err(e) => {
                    say!(out, r#"{{"event":"error","message":"not sent: {}"}}"#, e);
                    next_line += 1;
                }
            }
        }

        app.poll(|event| on_event(&mut out, &mut flags, now, args.nick, args.room, event));

        if flags.closed || app.state() == ClientState::Closed {
            let stats = app.stats();
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
            let asked = flags.exit_asked;
            exit(&mut out, if asked { "/exit" } else { "closed" }, now, asked)
        }
        if flags.exit_asked && leaving_since.is_none() {
            app.leave();
            leaving_since = Some(now);
        }
        if leaving_since.is_some_and(|at| now.saturating_sub(at) > LEAVE_MS) {
            exit(&mut out, "/exit (no goodbye from the server)", now, true)
        }
        if now >= deadline {
            exit(&mut out, "timeout", now, false)
        }
        // SysTick wakes us every millisecond (the NIC is polled).
        cortex_m::asm::wfi();
    }
}

fn on_event(
    out: &mut Out,
    flags: &mut Flags,
    now: u64,
    nick: &str,
    room: &str,
    event: ClientEvent<TEXT_LEN>,
) {
    // The shape every driver shares (chat_core), plus what only the board knows.
    match &event {
        ClientEvent::Joined { .. } => say!(
            out,
            r#"{{{},"nick":{},"room":{}}}"#,
            event.json_fields(),
            JsonStr(nick),
            JsonStr(room)
        ),
        ClientEvent::ClockSynced { .. } => {
            say!(out, r#"{{{},"device_ms":{now}}}"#, event.json_fields())
        }
        _ => say!(out, "{{{}}}", event.json_fields()),
    }
    match event {
        ClientEvent::Joined { .. } => flags.joined = true,
        ClientEvent::Message {
            nick,
            text,
            notice: false,
            ..
        } => {
            say!(out, "board got: {nick}: {text}");
            if text == "/exit" {
                flags.exit_asked = true;
            }
        }
        ClientEvent::Closed => flags.closed = true,
        _ => {}
    }
}
