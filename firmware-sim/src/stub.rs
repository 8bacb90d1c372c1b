//! A stand-in network device for firmware builds without a NIC driver, and for
//! measuring them: it drops what the stack sends, or sends it straight back.
//!
//! Reflected, the device's own tokens come back as if from the server: the client opens
//! each one (MAC and AES, the deepest path on the stack) before refusing it as
//! unexpected, so a run over this device exercises the whole receive path.

use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, UdpPacket};

/// A `Medium::Ip` device over two caller-owned packet buffers; its MTU is the smaller.
#[derive(Debug)]
pub struct StubDevice<'b> {
    rx: &'b mut [u8],
    tx: &'b mut [u8],
    rx_len: Option<usize>,
    reflect: bool,
    /// Packets the stack handed over.
    pub transmitted: u32,
}

impl<'b> StubDevice<'b> {
    /// A device that drops every packet.
    pub fn dropping(rx: &'b mut [u8], tx: &'b mut [u8]) -> Self {
        Self {
            rx,
            tx,
            rx_len: None,
            reflect: false,
            transmitted: 0,
        }
    }

    /// A device that sends every IPv4/UDP packet back, addresses and ports swapped.
    pub fn reflecting(rx: &'b mut [u8], tx: &'b mut [u8]) -> Self {
        Self {
            reflect: true,
            ..Self::dropping(rx, tx)
        }
    }
}

/// A received packet.
#[derive(Debug)]
pub struct StubRxToken<'a> {
    packet: &'a [u8],
}

/// Room for a packet to send; reflected into `back` if that is given.
#[derive(Debug)]
pub struct StubTxToken<'a> {
    buf: &'a mut [u8],
    back: Option<(&'a mut [u8], &'a mut Option<usize>)>,
    transmitted: &'a mut u32,
}

impl phy::RxToken for StubRxToken<'_> {
    fn consume<T, F: FnOnce(&[u8]) -> T>(self, f: F) -> T {
        f(self.packet)
    }
}

impl phy::TxToken for StubTxToken<'_> {
    fn consume<T, F: FnOnce(&mut [u8]) -> T>(self, len: usize, f: F) -> T {
        let len = len.min(self.buf.len());
        let (packet, _) = self.buf.split_at_mut(len);
        let result = f(packet);
        *self.transmitted = self.transmitted.wrapping_add(1);
        if let Some((back, back_len)) = self.back {
            *back_len = reflect(packet, back);
        }
        result
    }
}

/// Copies an IPv4/UDP packet into `out` with its source and destination swapped.
fn reflect(packet: &[u8], out: &mut [u8]) -> Option<usize> {
    let ip = Ipv4Packet::new_checked(packet).ok()?;
    if ip.next_header() != IpProtocol::Udp {
        return None;
    }
    let len = packet.len();
    out.get_mut(..len)?.copy_from_slice(packet);
    let out = out.get_mut(..len)?;
    let mut ip = Ipv4Packet::new_checked(out).ok()?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.fill_checksum();
    let mut udp = UdpPacket::new_checked(ip.payload_mut()).ok()?;
    let (src_port, dst_port) = (udp.src_port(), udp.dst_port());
    udp.set_src_port(dst_port);
    udp.set_dst_port(src_port);
    udp.fill_checksum(&IpAddress::Ipv4(dst), &IpAddress::Ipv4(src));
    Some(len)
}

impl Device for StubDevice<'_> {
    type RxToken<'a>
        = StubRxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = StubTxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, _: Instant) -> Option<(StubRxToken<'_>, StubTxToken<'_>)> {
        let len = self.rx_len.take()?;
        let packet = self.rx.get(..len)?;
        Some((
            StubRxToken { packet },
            StubTxToken {
                buf: &mut *self.tx,
                back: None,
                transmitted: &mut self.transmitted,
            },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<StubTxToken<'_>> {
        let back = if self.reflect && self.rx_len.is_none() {
            Some((&mut *self.rx, &mut self.rx_len))
        } else {
            None
        };
        Some(StubTxToken {
            buf: &mut *self.tx,
            back,
            transmitted: &mut self.transmitted,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.rx.len().min(self.tx.len());
        caps.checksum = ChecksumCapabilities::default();
        caps
    }
}
