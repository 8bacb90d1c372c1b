//! A polled smoltcp [`Device`] for the SMSC LAN9118 Ethernet controller, as QEMU's
//! `mps2-an385` / `mps2-an386` boards map it (32-bit register access, at 0x4020_0000).
//!
//! Polled, no interrupts, no DMA: a received frame is popped from the RX data FIFO into
//! a caller-owned buffer when smoltcp asks for one; a frame to send is built in a second
//! buffer and pushed into the TX data FIFO as one segment (command words A and B, then
//! the data). Good enough for a chat device; a busier one would take the interrupt.
//!
//! The only `unsafe` of the image's network path is here: the two volatile register
//! accessors, used by every method.
//!
//! Register map and command words: SMSC LAN9118 datasheet, section 5; checked against
//! QEMU's model (hw/net/lan9118.c): it moves frames as soon as they are pushed, ignores
//! the PHY for the link, and completes MAC CSR accesses at once (the driver still waits
//! for their busy bits, as real silicon needs).

#![allow(unsafe_code)]

use core::sync::atomic::{AtomicBool, Ordering};
use firmware_sim::smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use firmware_sim::smoltcp::time::Instant;
use firmware_sim::smoltcp::wire::EthernetAddress;

/// Where the controller is on the MPS2 boards (AN385, AN386, AN500).
pub const MPS2_BASE: usize = 0x4020_0000;

/// The largest frame handled: 1500 bytes of payload, the Ethernet header, the FCS.
pub const FRAME: usize = 1518;
/// The largest frame smoltcp may build or get (no FCS: the controller adds and strips it).
const MTU: usize = FRAME - 4;

// System control and status registers (byte offsets).
const RX_DATA_FIFO: usize = 0x00;
const TX_DATA_FIFO: usize = 0x20;
const RX_STATUS_FIFO: usize = 0x40;
const TX_STATUS_FIFO: usize = 0x48;
const ID_REV: usize = 0x50;
const IRQ_CFG: usize = 0x54;
const INT_STS: usize = 0x58;
const INT_EN: usize = 0x5C;
const BYTE_TEST: usize = 0x64;
const TX_CFG: usize = 0x70;
const HW_CFG: usize = 0x74;
const RX_FIFO_INF: usize = 0x7C;
const TX_FIFO_INF: usize = 0x80;
const PMT_CTRL: usize = 0x84;
const MAC_CSR_CMD: usize = 0xA4;
const MAC_CSR_DATA: usize = 0xA8;

const BYTE_TEST_VALUE: u32 = 0x8765_4321;
const HW_CFG_SRST: u32 = 1;
const PMT_CTRL_READY: u32 = 1;
/// TX_CFG: transmitter on, and the TX status FIFO may overrun (statuses are only read
/// to keep it short, never needed).
const TX_CFG_TX_ON: u32 = 1 << 1;
const TX_CFG_TXSAO: u32 = 1 << 2;
const MAC_CSR_BUSY: u32 = 1 << 31;
const MAC_CSR_READ: u32 = 1 << 30;

// MAC CSR registers (indirect, through MAC_CSR_CMD / MAC_CSR_DATA).
const MAC_CR: u32 = 1;
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;
const MAC_CR_TXEN: u32 = 1 << 3;
const MAC_CR_RXEN: u32 = 1 << 2;
/// Full duplex: what QEMU's PHY (and a switch port) negotiates.
const MAC_CR_FDPX: u32 = 1 << 20;

// TX command A and B.
const TX_CMD_A_FIRST: u32 = 1 << 13;
const TX_CMD_A_LAST: u32 = 1 << 12;

/// RX status: the frame length (FCS included) and the error summary.
const RX_STS_LEN_SHIFT: u32 = 16;
const RX_STS_LEN_MASK: u32 = 0x3FFF;
const RX_STS_ERROR: u32 = 1 << 15;

/// Bounded busy-wait, in register reads (the controller answers in microseconds).
const SPIN: u32 = 100_000;

/// Why the controller could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// BYTE_TEST or ID_REV is not a LAN9118's: no controller (or another) at the base.
    NotFound { id_rev: u32 },
    /// The soft reset or a MAC register access did not complete.
    Timeout,
    /// The controller already has its driver.
    Taken,
}

/// Whether the MPS2 controller has been handed out.
static MPS2_TAKEN: AtomicBool = AtomicBool::new(false);

/// Frames counted by the driver, for a log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames received and handed to smoltcp.
    pub rx: u32,
    /// Frames dropped on receive (errors, too long).
    pub rx_dropped: u32,
    /// Frames pushed for transmission.
    pub tx: u32,
}

/// The register block.
#[derive(Clone, Copy, Debug)]
struct Regs {
    base: usize,
}

impl Regs {
    fn read(self, offset: usize) -> u32 {
        // SAFETY: `Lan9118::new`'s contract: `base` is this controller's register
        // block, the driver's alone; every offset used is a register inside its 256
        // bytes, accessed as one aligned 32-bit word as the controller requires.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write(self, offset: usize, value: u32) {
        // SAFETY: as in `read`, for a register write.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }
}

/// The controller, polled.
#[derive(Debug)]
pub struct Lan9118 {
    regs: Regs,
    mac: EthernetAddress,
    rx: &'static mut [u8; FRAME],
    tx: &'static mut [u8; FRAME],
    tag: u16,
    /// The frame counters.
    pub counters: Counters,
}

impl Lan9118 {
    /// The controller of the MPS2 board this image is built for (`board-an385`), at
    /// [`MPS2_BASE`]; once only. See [`new`](Self::new) for the rest.
    pub fn take_mps2(
        fallback_mac: [u8; 6],
        rx: &'static mut [u8; FRAME],
        tx: &'static mut [u8; FRAME],
    ) -> Result<Self, InitError> {
        if MPS2_TAKEN.swap(true, Ordering::AcqRel) {
            return Err(InitError::Taken);
        }
        // SAFETY: the `board-an385` image runs on an MPS2 board (AN385), whose LAN9118
        // registers are at MPS2_BASE (device memory, QEMU's hw/arm/mps2.c); the flag
        // above makes this driver their only user.
        unsafe { Self::new(MPS2_BASE, fallback_mac, rx, tx) }
    }

    /// Resets the controller at `base`, keeps the station address it has (QEMU's
    /// `-nic ...,mac=`; EEPROM-loaded on a real board) unless it is unset, in which case
    /// `fallback_mac` is programmed, and enables the transmitter and the receiver
    /// (unicast to the station address and broadcast).
    ///
    /// # Safety
    ///
    /// `base` must be the address of a LAN9118's register block (256 bytes of device
    /// memory), and nothing else may touch that block while the driver lives.
    unsafe fn new(
        base: usize,
        fallback_mac: [u8; 6],
        rx: &'static mut [u8; FRAME],
        tx: &'static mut [u8; FRAME],
    ) -> Result<Self, InitError> {
        let mut nic = Self {
            regs: Regs { base },
            mac: EthernetAddress(fallback_mac),
            rx,
            tx,
            tag: 0,
            counters: Counters::default(),
        };
        let id_rev = nic.read(ID_REV);
        if nic.read(BYTE_TEST) != BYTE_TEST_VALUE || id_rev >> 16 != 0x0118 {
            return Err(InitError::NotFound { id_rev });
        }
        nic.write(HW_CFG, HW_CFG_SRST);
        nic.spin_until(|nic| nic.read(HW_CFG) & HW_CFG_SRST == 0)?;
        nic.spin_until(|nic| nic.read(PMT_CTRL) & PMT_CTRL_READY != 0)?;
        // Polled: no interrupt line.
        nic.write(INT_EN, 0);
        nic.write(IRQ_CFG, 0);
        nic.write(INT_STS, u32::MAX);

        let low = nic.mac_read(MAC_ADDRL)?.to_le_bytes();
        let high = nic.mac_read(MAC_ADDRH)?.to_le_bytes();
        let current = [low[0], low[1], low[2], low[3], high[0], high[1]];
        let current = EthernetAddress(current);
        if current.is_unicast() && current != EthernetAddress([0; 6]) {
            nic.mac = current;
        } else {
            let [a, b, c, d, e, f] = fallback_mac;
            nic.mac_write(MAC_ADDRL, u32::from_le_bytes([a, b, c, d]))?;
            nic.mac_write(MAC_ADDRH, u32::from_le_bytes([e, f, 0, 0]))?;
        }
        nic.write(TX_CFG, TX_CFG_TX_ON | TX_CFG_TXSAO);
        nic.mac_write(MAC_CR, MAC_CR_TXEN | MAC_CR_RXEN | MAC_CR_FDPX)?;
        Ok(nic)
    }

    /// The station address in use.
    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }

    /// The chip's ID_REV (0x0118_0001 on QEMU).
    pub fn id_rev(&self) -> u32 {
        self.read(ID_REV)
    }

    fn read(&self, offset: usize) -> u32 {
        self.regs.read(offset)
    }

    fn write(&mut self, offset: usize, value: u32) {
        self.regs.write(offset, value);
    }

    fn spin_until(&mut self, mut done: impl FnMut(&mut Self) -> bool) -> Result<(), InitError> {
        for _ in 0..SPIN {
            if done(self) {
                return Ok(());
            }
        }
        Err(InitError::Timeout)
    }

    fn mac_idle(&mut self) -> Result<(), InitError> {
        self.spin_until(|nic| nic.read(MAC_CSR_CMD) & MAC_CSR_BUSY == 0)
    }

    fn mac_read(&mut self, register: u32) -> Result<u32, InitError> {
        self.mac_idle()?;
        self.write(MAC_CSR_CMD, MAC_CSR_BUSY | MAC_CSR_READ | register);
        self.mac_idle()?;
        Ok(self.read(MAC_CSR_DATA))
    }

    fn mac_write(&mut self, register: u32, value: u32) -> Result<(), InitError> {
        self.mac_idle()?;
        self.write(MAC_CSR_DATA, value);
        self.write(MAC_CSR_CMD, MAC_CSR_BUSY | register);
        self.mac_idle()
    }

    /// Frames waiting in the RX status FIFO.
    fn rx_pending(&self) -> u32 {
        (self.read(RX_FIFO_INF) >> 16) & 0xFF
    }

    /// Free bytes in the TX data FIFO.
    fn tx_free(&self) -> usize {
        (self.read(TX_FIFO_INF) & 0xFFFF) as usize
    }

    /// Pops the next received frame into the RX buffer; its length without the FCS.
    fn pop_frame(&mut self) -> Option<usize> {
        while self.rx_pending() > 0 {
            let status = self.read(RX_STATUS_FIFO);
            let len = ((status >> RX_STS_LEN_SHIFT) & RX_STS_LEN_MASK) as usize;
            // The data FIFO holds the frame and its FCS, padded to whole words: pop all
            // of it, kept or not, so the next frame starts on its first word.
            let words = len.div_ceil(4);
            let keep = status & RX_STS_ERROR == 0 && (14 + 4..=FRAME).contains(&len);
            for i in 0..words {
                let word = self.read(RX_DATA_FIFO).to_le_bytes();
                if keep {
                    let at = i * 4;
                    let end = (at + 4).min(FRAME);
                    if let (Some(dst), Some(src)) = (self.rx.get_mut(at..end), word.get(..end - at))
                    {
                        dst.copy_from_slice(src);
                    }
                }
            }
            if keep {
                self.counters.rx = self.counters.rx.wrapping_add(1);
                return Some(len - 4);
            }
            self.counters.rx_dropped = self.counters.rx_dropped.wrapping_add(1);
        }
        None
    }

    /// Drops the transmit statuses (the FIFO may overrun, but need not fill up).
    fn drain_tx_status(&mut self) {
        while (self.read(TX_FIFO_INF) >> 16) & 0xFF != 0 {
            let _ = self.read(TX_STATUS_FIFO);
        }
    }
}

/// A received frame, in the driver's RX buffer.
#[derive(Debug)]
pub struct RxToken<'a> {
    frame: &'a [u8],
}

/// Room for one frame to send: pushed into the TX data FIFO when built.
#[derive(Debug)]
pub struct TxToken<'a> {
    regs: Regs,
    buf: &'a mut [u8; FRAME],
    tag: &'a mut u16,
    sent: &'a mut u32,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<T, F: FnOnce(&[u8]) -> T>(self, f: F) -> T {
        f(self.frame)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<T, F: FnOnce(&mut [u8]) -> T>(self, len: usize, f: F) -> T {
        let len = len.min(MTU);
        let (frame, _) = self.buf.split_at_mut(len);
        let result = f(frame);
        *self.tag = self.tag.wrapping_add(1);
        let len32 = len as u32;
        // One segment: command A (first and last segment, its length), command B (a
        // tag for the status word, the frame length), then the data, little-endian
        // words, the last one padded.
        self.regs
            .write(TX_DATA_FIFO, TX_CMD_A_FIRST | TX_CMD_A_LAST | len32);
        self.regs
            .write(TX_DATA_FIFO, (u32::from(*self.tag) << 16) | len32);
        for chunk in frame.chunks(4) {
            let mut word = [0u8; 4];
            if let Some(dst) = word.get_mut(..chunk.len()) {
                dst.copy_from_slice(chunk);
            }
            self.regs.write(TX_DATA_FIFO, u32::from_le_bytes(word));
        }
        *self.sent = self.sent.wrapping_add(1);
        result
    }
}

impl Device for Lan9118 {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, _: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let len = self.pop_frame()?;
        let Self {
            regs,
            rx,
            tx,
            tag,
            counters,
            ..
        } = self;
        let frame = rx.get(..len)?;
        Some((
            RxToken { frame },
            TxToken {
                regs: *regs,
                buf: tx,
                tag,
                sent: &mut counters.tx,
            },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        self.drain_tx_status();
        // Room for the largest frame and its two command words.
        if self.tx_free() < FRAME + 8 {
            return None;
        }
        let Self {
            regs,
            tx,
            tag,
            counters,
            ..
        } = self;
        Some(TxToken {
            regs: *regs,
            buf: tx,
            tag,
            sent: &mut counters.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(1);
        caps.checksum = ChecksumCapabilities::default();
        caps
    }
}
