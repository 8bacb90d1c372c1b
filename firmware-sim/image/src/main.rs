//! The device application as firmware: a `no_main` Cortex-M image, no allocator, a
//! panic handler that loops. The network is the stub device of `firmware_sim::stub`
//! (a real board puts its NIC driver there); the clock is SysTick at 1 kHz, zero at
//! reset. It joins as `sensor1`, sends a reading every 10 s, and counts what it gets.
//!
//! Randomness: a ChaCha20 CSPRNG ([`Csprng`]). QEMU's boards have no TRNG, so the
//! `board-an385` image takes its 256-bit seed from the host at boot (`seed=` on the
//! semihosting command line); the stub image, which never reaches a network (its device
//! drops or reflects every packet), uses a fixed seed. A real board must seed it from
//! its hardware RNG, or use that RNG directly: see `../boards/`.
//!
//! With the `qemu` feature (run on `qemu-system-arm -machine mps2-an386`), the stub
//! reflects every packet so the receive path (MAC, AES) runs too, and after 8 s of
//! device time the image prints its stack high-water mark over semihosting and exits.
//!
//! With the `board-an385` feature (thumbv7m-none-eabi, run on `qemu-system-arm -machine
//! mps2-an385 -nic user,model=lan9118`: see ../run-qemu.sh), the network is the board's
//! LAN9118 Ethernet controller ([`lan9118`]) behind QEMU's user-mode NAT, and the image
//! chats with a real `host-chat server` on the host: see [`board`].

#![no_std]
#![no_main]

#[cfg(not(feature = "board-an385"))]
use chat_core::fernet::Key;
#[cfg(not(feature = "board-an385"))]
use chat_core::session::{ClientConfig, ClientEvent};
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
#[cfg(not(feature = "board-an385"))]
use firmware_sim::smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr};
#[cfg(not(feature = "board-an385"))]
use firmware_sim::stub::StubDevice;
#[cfg(not(feature = "board-an385"))]
use firmware_sim::{App, Behaviour, NetConfig, Node, Report};
use firmware_sim::{Buffers, Clock, Metadata, Payload};
#[cfg(not(feature = "board-an385"))]
use rand_core::{Rng as _, SeedableRng as _};

#[cfg(feature = "board-an385")]
mod board;
#[cfg(feature = "board-an385")]
mod lan9118;

/// Core clock of the MPS2 boards; set to the part's.
const CORE_HZ: u32 = 25_000_000;
/// A packet for the stub device: the longest datagram the device sends, with headers.
#[cfg(not(feature = "board-an385"))]
const PACKET: usize = firmware_sim::MAX_SEND_DATAGRAM + 28;
/// The provisioned key. A real device keeps it in a flash config block (see
/// `firmware_sim::config` and `../boards/`).
#[cfg(not(feature = "board-an385"))]
const KEY: [u8; 32] = [7; 32];
/// The stub image's seed: it never reaches a network, so a constant keeps it honest
/// about size without pretending to be random. Never on a real board.
#[cfg(not(feature = "board-an385"))]
const MEASUREMENT_SEED: [u8; 32] = [0x5A; 32];
/// The reading: every 10 s (device time), numbered.
#[cfg(not(feature = "board-an385"))]
const READING: (u64, &str) = (10_000, "temp 21.5 C #{N}");

/// Milliseconds since reset, counted by SysTick.
static MILLIS: AtomicU32 = AtomicU32::new(0);
/// Room messages received: what a real board would show on its display.
#[cfg(not(feature = "board-an385"))]
static RECEIVED: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    // Only this handler writes: a load and a store (no CAS on thumbv6m).
    MILLIS.store(
        MILLIS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// The 32-bit SysTick count widened to 64 bits.
#[derive(Debug, Default)]
struct Uptime {
    last: u32,
    wraps: u64,
}

impl Clock for Uptime {
    fn now_millis(&mut self) -> u64 {
        let now = MILLIS.load(Ordering::Relaxed);
        if now < self.last {
            self.wraps += 1;
        }
        self.last = now;
        (self.wraps << 32) | u64::from(now)
    }
}

/// The image's CSPRNG: ChaCha20 (RustCrypto's `chacha20`, as `rand`'s `StdRng`), 20
/// rounds. Only as good as its seed: QEMU's host passes one; a real board takes it from
/// its hardware RNG.
type Csprng = chacha20::ChaCha20Rng;

#[panic_handler]
fn panic(_: &PanicInfo<'_>) -> ! {
    halt()
}

/// Stops here for good (a watchdog would reset the board).
fn halt() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

#[entry]
fn main() -> ! {
    static mut METADATA: Metadata<'static> = Metadata::new();
    static mut PAYLOAD: Payload = Payload::new();
    #[cfg(not(feature = "board-an385"))]
    static mut RX: [u8; PACKET] = [0; PACKET];
    #[cfg(not(feature = "board-an385"))]
    static mut TX: [u8; PACKET] = [0; PACKET];
    #[cfg(feature = "board-an385")]
    static mut RX_FRAME: [u8; lan9118::FRAME] = [0; lan9118::FRAME];
    #[cfg(feature = "board-an385")]
    static mut TX_FRAME: [u8; lan9118::FRAME] = [0; lan9118::FRAME];
    #[cfg(feature = "board-an385")]
    static mut CMDLINE: [u8; 512] = [0; 512];

    #[cfg(feature = "qemu")]
    qemu::paint_stack();

    let Some(mut core) = cortex_m::Peripherals::take() else {
        halt()
    };
    core.SYST.set_clock_source(SystClkSource::Core);
    core.SYST.set_reload(CORE_HZ / 1000 - 1);
    core.SYST.clear_current();
    core.SYST.enable_interrupt();
    core.SYST.enable_counter();
    let buffers = Buffers {
        metadata: METADATA,
        payload: PAYLOAD,
    };

    #[cfg(feature = "board-an385")]
    board::run(buffers, RX_FRAME, TX_FRAME, CMDLINE);
    #[cfg(not(feature = "board-an385"))]
    run_stub(buffers, RX, TX)
}

/// The stub-device loop: a reading every 10 s, received messages counted.
#[cfg(not(feature = "board-an385"))]
fn run_stub(buffers: Buffers<'static>, rx: &'static mut [u8], tx: &'static mut [u8]) -> ! {
    #[cfg(feature = "qemu")]
    let device = StubDevice::reflecting(rx, tx);
    #[cfg(not(feature = "qemu"))]
    let device = StubDevice::dropping(rx, tx);
    let net = NetConfig {
        address: Ipv4Cidr::new(Ipv4Address::new(10, 42, 0, 2), 24),
        gateway: None,
        local_port: 0,
        server: IpEndpoint::new(IpAddress::v4(10, 42, 0, 1), 12345),
    };
    let mut rng = Csprng::from_seed(MEASUREMENT_SEED);
    let seed = rng.next_u64();
    let behaviour = Behaviour {
        every: Some(READING),
        ..Behaviour::default()
    };
    let mut clock = Uptime::default();
    let Ok(node) = Node::new(
        &ClientConfig::new("sensor1", "lobby"),
        Key::from_bytes(&KEY),
        rng,
        clock.now_millis(),
        behaviour,
        (),
    ) else {
        halt()
    };
    let Ok(mut app) = App::new(node, &net, seed, device, clock, buffers) else {
        halt()
    };

    let mut count = |report: &Report<'_>| {
        if let Some(ClientEvent::Message { .. }) = report.event() {
            // Main loop only: a load and a store (no CAS on thumbv6m).
            RECEIVED.store(
                RECEIVED.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            );
        }
        core::hint::black_box(report);
    };
    loop {
        app.poll(&mut count);
        #[cfg(feature = "qemu")]
        if app.now() >= 8_000 {
            qemu::report(&app);
        }
        // SysTick wakes us every millisecond; a NIC interrupt would too.
        cortex_m::asm::wfi();
    }
}

#[cfg(feature = "qemu")]
#[allow(unsafe_code)]
mod qemu {
    //! What only QEMU offers: stack painting (fill the free RAM below the stack with a
    //! pattern at reset, and find later how deep the stack ever went), and the
    //! semihosting call the board image needs besides printing (its command line).

    #[cfg(not(feature = "board-an385"))]
    use cortex_m_semihosting::{debug, hprintln};
    #[cfg(feature = "board-an385")]
    use cortex_m_semihosting::{nr, syscall1};

    const PATTERN: u32 = 0xDEAD_BEEF;

    unsafe extern "C" {
        /// End of .bss/.uninit: the lowest address the stack may reach.
        static __sheap: u32;
        /// Top of the stack.
        static _stack_start: u32;
    }

    fn bounds() -> (usize, usize) {
        (
            &raw const __sheap as usize,
            &raw const _stack_start as usize,
        )
    }

    /// Paints from the end of .bss up to a little below the current stack pointer.
    #[inline(never)]
    pub fn paint_stack() {
        let (bottom, _) = bounds();
        let sp = cortex_m::register::msp::read() as usize;
        let mut at = bottom;
        while at + 4 <= sp - 64 {
            // SAFETY: between the end of the statics and below the live stack frames:
            // memory nothing else uses.
            unsafe { core::ptr::write_volatile(at as *mut u32, PATTERN) };
            at += 4;
        }
    }

    /// The stack's high-water mark: (bytes used, bytes available, end of the statics).
    pub fn stack_used() -> (usize, usize, usize) {
        let (bottom, top) = bounds();
        let mut at = bottom;
        // SAFETY: reading RAM between the statics and the stack top.
        while at < top && unsafe { core::ptr::read_volatile(at as *const u32) } == PATTERN {
            at += 4;
        }
        (top - at, top - bottom, bottom)
    }

    /// The command line QEMU was given (`-kernel IMAGE -append ARGS` gives "IMAGE
    /// ARGS"; `-semihosting-config arg=...` gives those), read into `buf`; empty if the
    /// host has none or it does not fit.
    #[cfg(feature = "board-an385")]
    pub fn cmdline(buf: &mut [u8]) -> &str {
        buf.fill(0);
        let mut block = [buf.as_mut_ptr() as usize, buf.len()];
        // SAFETY: SYS_GET_CMDLINE writes at most `block[1]` bytes into `buf` (ours,
        // borrowed mutably) and the length back into `block` (ours too); both outlive
        // the call. Semihosting needs a debugger or QEMU: this module is for QEMU only.
        let failed = unsafe { syscall1(nr::GET_CMDLINE, block.as_mut_ptr() as usize) } != 0;
        // SAFETY: `block` is a live local; the host may have written it.
        let len = unsafe { core::ptr::read_volatile(&raw const block[1]) };
        if failed {
            return "";
        }
        let text = buf.get(..len.min(buf.len())).unwrap_or_default();
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        core::str::from_utf8(&text[..end]).unwrap_or("")
    }

    /// Prints the figures and ends the QEMU run.
    #[cfg(not(feature = "board-an385"))]
    pub fn report<D, C, R, L>(app: &firmware_sim::App<'_, D, C, R, L>) -> !
    where
        D: firmware_sim::smoltcp::phy::Device,
        C: firmware_sim::Clock,
        R: rand_core::CryptoRng,
        L: firmware_sim::Lines,
    {
        let (used, total, bottom) = stack_used();
        let stats = app.node().stats();
        hprintln!(
            "stack: {} bytes used of {} (high-water mark); statics end at {:#x}",
            used,
            total,
            bottom
        );
        hprintln!(
            "sent {} datagrams, opened {} reflected ones (dropped as unexpected: {}), state {:?}",
            stats.sent,
            stats.dropped.iter().sum::<u32>(),
            stats.dropped[chat_core::session::Dropped::Unexpected.index()],
            app.node().state()
        );
        debug::exit(debug::EXIT_SUCCESS);
        super::halt()
    }
}
