//! The chat device on a WIZnet W5500-EVB-Pico: an RP2040 with a W5500 Ethernet chip on
//! SPI0. Only the hardware is here: the application (what the device sends, its
//! reports, its sessions) is `firmware_sim`'s node, driven by `firmware_embassy`.
//!
//! - Settings (key, server, ...): the config block in the last flash sector
//!   (0x101FF000, see memory.x and README.md), else a development config compiled in
//!   from `HOST_CHAT_DEVICE_CONFIG`.
//! - Network: the W5500 in MACRAW mode under embassy-net (`embassy-net-wiznet`), DHCP
//!   unless the settings give an `address`; the MAC is locally administered, made from
//!   the flash chip's unique id.
//! - Randomness: see [`rosc_seed`]. The RP2040 has no TRNG.
//! - Output: one JSON object per line over RTT (`probe-rs run` shows it).
//!
//! It sends "hello from a W5500-EVB-Pico", then behaves as every board does
//! (`firmware_embassy::board::BEHAVIOUR`): its uptime every minute; when a session ends
//! (a room member sends `/exit`, the server refuses it), another 10 s later.

#![no_std]
#![no_main]

use core::panic::PanicInfo;
use embassy_executor::Spawner;
use embassy_net::StackResources;
use embassy_net_wiznet::chip::W5500;
use embassy_net_wiznet::{Device as WiznetDevice, Runner as WiznetRunner, State};
use embassy_rp::bind_interrupts;
use embassy_rp::clocks::RoscRng;
use embassy_rp::dma;
use embassy_rp::flash::{Blocking, Flash};
use embassy_rp::gpio::{Input, Level, Output, Pull};
use embassy_rp::peripherals::{DMA_CH0, DMA_CH1, SPI0};
use embassy_rp::spi::{Async, Config as SpiConfig, Spi};
use embassy_time::{Delay, Instant};
use embedded_hal_bus::spi::ExclusiveDevice;
use firmware_embassy::Buffers;
use firmware_embassy::board::{self, DEV_CONFIG_VAR, Device};
use firmware_sim::{Report, Script};
use rand_core::{Rng as _, SeedableRng as _};
use sha2::{Digest, Sha256};
use static_cell::StaticCell;

/// The board's name: the default nickname, and the `board` of the boot report.
const BOARD: &str = "w5500-evb-pico";
/// The W25Q16JV on the board: 2 MiB.
const FLASH_SIZE: usize = 2 * 1024 * 1024;
/// The config block: the last 4 KiB sector (memory.x keeps the image out of it).
const CONFIG_OFFSET: u32 = (FLASH_SIZE - 4096) as u32;
/// Bytes of the config block read: far more than any config needs.
const CONFIG_READ: usize = 512;
/// What the device says first, each session.
const LINES: [&str; 1] = ["hello from a W5500-EVB-Pico"];
/// ROSC samples hashed into the 256-bit seed: 16 per seed bit.
const ROSC_SAMPLE_BYTES: usize = 512;

type Csprng = chacha20::ChaCha20Rng;
type Spi0 = ExclusiveDevice<Spi<'static, SPI0, Async>, Output<'static>, Delay>;

bind_interrupts!(struct Irqs {
    DMA_IRQ_0 => dma::InterruptHandler<DMA_CH0>, dma::InterruptHandler<DMA_CH1>;
});

/// Writes one line to RTT.
fn say(args: core::fmt::Arguments<'_>) {
    rtt_target::rprintln!("{}", args);
}

/// The device's reports, as JSON lines over RTT.
fn print(report: &Report<'_>) {
    say(format_args!("{}", report.json()));
}

/// Stops for good, after saying why: the board needs provisioning or a fix.
async fn halt(message: core::fmt::Arguments<'_>) -> ! {
    say(format_args!("{}", board::error_json(message)));
    board::park().await
}

/// The CSPRNG's seed. The RP2040 has no TRNG: its only physical entropy source is the
/// ring oscillator's RANDOMBIT register (datasheet 2.17.5), a free-running oscillator
/// sampled by the bus clock. Its bits are biased and consecutive samples correlated,
/// and Raspberry Pi gives no entropy figure for it. So this takes 4096 samples (16 per
/// seed bit) through embassy-rp's `RoscRng` and the boot time in microseconds, hashes
/// them with SHA-256 into 32 bytes, and seeds ChaCha20 with that. Good enough for IVs
/// that must not repeat on a hobby board; for a product, use a part with a TRNG
/// (RP2350, ESP32-C3, STM32 with RNG) or a secure element.
fn rosc_seed() -> [u8; 32] {
    let mut samples = [0u8; ROSC_SAMPLE_BYTES];
    RoscRng.fill_bytes(&mut samples);
    let mut hash = Sha256::new();
    hash.update(b"host-chat w5500-evb-pico rosc seed v1");
    hash.update(samples);
    hash.update(Instant::now().as_micros().to_le_bytes());
    hash.finalize().into()
}

#[embassy_executor::task]
async fn ethernet_task(
    runner: WiznetRunner<'static, W5500, Spi0, Input<'static>, Output<'static>>,
) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, WiznetDevice<'static>>) -> ! {
    runner.run().await
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    rtt_target::rtt_init_print!();
    let p = embassy_rp::init(Default::default());

    // Settings, and the flash chip's unique id for the MAC address.
    static CONFIG: StaticCell<[u8; CONFIG_READ]> = StaticCell::new();
    let config = CONFIG.init([0xFF; CONFIG_READ]);
    let mut flash = Flash::<_, Blocking, FLASH_SIZE>::new_blocking(p.FLASH);
    let mut uid = [0u8; 8];
    if flash.blocking_read(CONFIG_OFFSET, config).is_err()
        || flash.blocking_unique_id(&mut uid).is_err()
    {
        halt(format_args!("cannot read the flash")).await
    }
    let settings = board::settings(config, option_env!("HOST_CHAT_DEVICE_CONFIG"));
    let device = match settings.and_then(|settings| Device::new(settings, BOARD)) {
        Ok(device) => device,
        Err(e) => halt(format_args!("{e} ({DEV_CONFIG_VAR})")).await,
    };
    let mac = [0x02, uid[3], uid[4], uid[5], uid[6], uid[7]];

    let mut master = Csprng::from_seed(rosc_seed());

    // The W5500 on SPI0, as wired on the board.
    let mut spi_config = SpiConfig::default();
    spi_config.frequency = 50_000_000;
    let (miso, mosi, clk) = (p.PIN_16, p.PIN_19, p.PIN_18);
    let spi = Spi::new(
        p.SPI0, clk, mosi, miso, p.DMA_CH0, p.DMA_CH1, Irqs, spi_config,
    );
    let cs = Output::new(p.PIN_17, Level::High);
    let interrupt = Input::new(p.PIN_21, Pull::Up);
    let reset = Output::new(p.PIN_20, Level::High);
    // Infallible with a plain output pin as CS.
    let Ok(spi) = ExclusiveDevice::new(spi, cs, Delay);
    // Two frames each way: the chat sends one datagram at a time.
    static STATE: StaticCell<State<2, 2>> = StaticCell::new();
    let state = STATE.init(State::new());
    let Ok((nic, runner)) = embassy_net_wiznet::new(mac, state, spi, interrupt, reset).await else {
        halt(format_args!("no W5500 on SPI0")).await
    };
    spawner.spawn(ethernet_task(runner).expect("spawned once"));

    static RESOURCES: StaticCell<StackResources<2>> = StaticCell::new();
    let (stack, runner) = embassy_net::new(
        nic,
        device.net.clone(),
        RESOURCES.init(StackResources::new()),
        master.next_u64(),
    );
    spawner.spawn(net_task(runner).expect("spawned once"));
    stack.wait_config_up().await;
    say(format_args!("{}", board::boot_json(BOARD, &device, stack)));

    static BUFFERS: StaticCell<Buffers> = StaticCell::new();
    let session = || (Csprng::from_rng(&mut master), Script::new(&LINES));
    board::serve(
        stack,
        &device,
        board::BEHAVIOUR,
        session,
        BUFFERS.init(Buffers::new()),
        &mut print,
    )
    .await
}

#[panic_handler]
fn panic(_: &PanicInfo<'_>) -> ! {
    // A watchdog would reset the board; without one, stop here.
    loop {
        cortex_m::asm::wfi();
    }
}
