//! The chat device on an ESP32-C3 over Wi-Fi. Only the hardware is here: the
//! application (what the device sends, its reports, its sessions) is `firmware_sim`'s
//! node, driven by `firmware_embassy`.
//!
//! - Settings (key, server, Wi-Fi): the config block in the `hchat` partition
//!   (0x3F0000, see partitions.csv and README.md), else a development config compiled
//!   in from `HOST_CHAT_DEVICE_CONFIG`.
//! - Network: esp-radio's Wi-Fi station under embassy-net, DHCP unless the settings give
//!   an `address`; esp-rtos runs the radio's tasks and the embassy executor.
//! - Randomness: the chip's hardware RNG (see [`hardware_rng`]).
//! - Output: one JSON object per line on the USB serial port (`espflash monitor`).
//!
//! It sends "hello from an ESP32-C3", then behaves as every board does
//! (`firmware_embassy::board::BEHAVIOUR`): its uptime every minute; when a session ends
//! (a room member sends `/exit`, the server refuses it), another 10 s later.

#![no_std]
#![no_main]

extern crate alloc;

use embassy_executor::Spawner;
use embassy_net::{Runner, StackResources};
use embassy_time::Timer;
use embedded_storage::ReadStorage as _;
use esp_backtrace as _;
use esp_hal::clock::CpuClock;
use esp_hal::interrupt::software::SoftwareInterruptControl;
use esp_hal::ram;
use esp_hal::rng::Trng;
use esp_hal::timer::timg::TimerGroup;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{Config, ControllerConfig, Interface, WifiController};
use esp_storage::FlashStorage;
use firmware_embassy::Buffers;
use firmware_embassy::board::{self, DEV_CONFIG_VAR, Device};
use firmware_sim::{Report, Script};
use rand_core::Rng as _;
use static_cell::StaticCell;

esp_bootloader_esp_idf::esp_app_desc!();

/// The board's name: the default nickname, and the `board` of the boot report.
const BOARD: &str = "esp32c3";
/// The `hchat` partition (partitions.csv): the config block.
const CONFIG_OFFSET: u32 = 0x3F_0000;
/// Bytes of the config block read: far more than any config needs.
const CONFIG_READ: usize = 512;
/// What the device says first, each session.
const LINES: [&str; 1] = ["hello from an ESP32-C3"];

/// The device's reports, as JSON lines on the serial port.
fn print(report: &Report<'_>) {
    esp_println::println!("{}", report.json());
}

/// Stops for good, after saying why: the board needs provisioning or a fix.
async fn halt(message: core::fmt::Arguments<'_>) -> ! {
    esp_println::println!("{}", board::error_json(message));
    board::park().await
}

/// The chip's RNG as a cryptographic RNG. The ESP32-C3's RNG peripheral is a true
/// random number generator while an entropy source runs (technical reference manual,
/// "Random Number Generator"): the RF subsystem (Wi-Fi/Bluetooth) or the SAR ADC. Here
/// the radio is that source: esp-radio counts it while Wi-Fi is on, and esp-hal's
/// `Trng::try_new` refuses unless a source is running, so this is called once Wi-Fi is
/// up and never falls back to the pseudo-random mode. Each call is a fresh handle on
/// the same hardware; the chat client draws IVs straight from it.
fn hardware_rng() -> Option<Trng> {
    Trng::try_new().ok()
}

#[embassy_executor::task]
async fn wifi_task(mut controller: WifiController<'static>) {
    loop {
        if controller.connect_async().await.is_ok() {
            let _ = controller.wait_for_disconnect_async().await;
        }
        Timer::after_secs(5).await;
    }
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Interface<'static>>) {
    runner.run().await
}

#[esp_rtos::main]
async fn main(spawner: Spawner) -> ! {
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    // The Wi-Fi driver allocates: 64 KiB of the RAM the bootloader used, 36 KiB more.
    esp_alloc::heap_allocator!(#[ram(reclaimed)] size: 64 * 1024);
    esp_alloc::heap_allocator!(size: 36 * 1024);
    let timg0 = TimerGroup::new(peripherals.TIMG0);
    let software = SoftwareInterruptControl::new(peripherals.SW_INTERRUPT);
    esp_rtos::start(timg0.timer0, software.software_interrupt0);

    static CONFIG: StaticCell<[u8; CONFIG_READ]> = StaticCell::new();
    let config = CONFIG.init([0xFF; CONFIG_READ]);
    let mut flash = FlashStorage::new(peripherals.FLASH);
    if flash.read(CONFIG_OFFSET, config).is_err() {
        halt(format_args!("cannot read the flash")).await
    }
    let settings = match board::settings(config, option_env!("HOST_CHAT_DEVICE_CONFIG")) {
        Ok(settings) => settings,
        Err(e) => halt(format_args!("{e} ({DEV_CONFIG_VAR})")).await,
    };
    let Some(ssid) = settings.0.ssid else {
        halt(format_args!(
            "the settings have no ssid= (the Wi-Fi network)"
        ))
        .await
    };
    let password = alloc::string::String::from(settings.0.password.unwrap_or(""));
    let device = match Device::new(settings, BOARD) {
        Ok(device) => device,
        Err(e) => halt(format_args!("{e} ({DEV_CONFIG_VAR})")).await,
    };

    let station = StationConfig::default()
        .with_ssid(ssid)
        .with_password(password);
    let wifi = esp_radio::wifi::new(
        peripherals.WIFI,
        ControllerConfig::default().with_initial_config(Config::Station(station)),
    );
    let Ok((controller, interfaces)) = wifi else {
        halt(format_args!("the Wi-Fi did not start")).await
    };
    // The radio is on: the RNG is a TRNG from here.
    let Some(mut rng) = hardware_rng() else {
        halt(format_args!("no entropy source for the RNG")).await
    };

    static RESOURCES: StaticCell<StackResources<2>> = StaticCell::new();
    let (stack, runner) = embassy_net::new(
        interfaces.station,
        device.net.clone(),
        RESOURCES.init(StackResources::new()),
        rng.next_u64(),
    );
    spawner.spawn(wifi_task(controller).expect("spawned once"));
    spawner.spawn(net_task(runner).expect("spawned once"));
    stack.wait_config_up().await;
    esp_println::println!("{}", board::boot_json(BOARD, &device, stack));

    static BUFFERS: StaticCell<Buffers> = StaticCell::new();
    let session = move || (rng.clone(), Script::new(&LINES));
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
