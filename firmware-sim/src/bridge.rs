//! A user-space bridge from the device's smoltcp stack to an ordinary host UDP socket,
//! so the device application talks to a real server without root or a TAP interface.
//!
//! The device sits on a virtual IPv4 network and sees the server at a virtual endpoint.
//! Packets the stack emits to that endpoint are parsed (IPv4 and UDP, checksums
//! checked) and their payload sent from a host socket to the real server, which may be
//! IPv4 or IPv6. Datagrams the host socket receives from the real server are wrapped
//! into IPv4/UDP packets from the virtual endpoint to the device, with correct
//! checksums, and handed to the stack. Anything else is dropped and counted, as a NAT
//! would.

use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{
    IpAddress, IpEndpoint, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// IPv4 and UDP headers, without options.
const HEADERS: usize = 20 + 8;
/// Packets waiting for the stack; more are left in the host socket's own buffer.
const INBOX: usize = 8;

/// What the bridge counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// Datagrams carried from the stack to the server.
    pub to_server: u64,
    /// Datagrams carried from the server to the stack.
    pub to_device: u64,
    /// Packets from the stack that were not IPv4/UDP to the server, or broken.
    pub dropped_out: u64,
    /// Datagrams from the host socket too long for the MTU.
    pub dropped_in: u64,
}

/// A `Medium::Ip` [`Device`] whose wire is a host UDP socket.
#[derive(Debug)]
pub struct UdpBridge {
    socket: UdpSocket,
    server: SocketAddr,
    virtual_server: IpEndpoint,
    device_ip: Ipv4Address,
    /// The device's port, learnt from its first packet to the server.
    device_port: Option<u16>,
    mtu: usize,
    inbox: VecDeque<Vec<u8>>,
    stats: BridgeStats,
}

impl UdpBridge {
    /// A bridge for a device at `device_ip` that sends to `virtual_server`, carried to
    /// `server` from a host socket on an ephemeral port. `mtu` bounds the IP packets
    /// (1500 suits any datagram the chat sends).
    pub fn new(
        server: SocketAddr,
        device_ip: Ipv4Address,
        virtual_server: IpEndpoint,
        mtu: usize,
    ) -> io::Result<Self> {
        let local: SocketAddr = if server.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)?;
        // Connected: the kernel filters other senders, and reports an unreachable
        // server (ignored here: the client's "no answer" says it better).
        socket.connect(server)?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            server,
            virtual_server,
            device_ip,
            device_port: None,
            mtu,
            inbox: VecDeque::new(),
            stats: BridgeStats::default(),
        })
    }

    /// The host socket's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The real server.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The counters.
    pub fn stats(&self) -> BridgeStats {
        self.stats
    }

    /// Blocks until a datagram arrives from the server or `timeout` passes.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        if !self.inbox.is_empty() || timeout.is_zero() {
            return Ok(());
        }
        self.socket.set_nonblocking(false)?;
        self.socket.set_read_timeout(Some(timeout))?;
        let result = self.pull();
        self.socket.set_nonblocking(true)?;
        result
    }

    /// Takes one datagram from the host socket into the inbox, if there is one.
    fn pull(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; self.mtu.saturating_sub(HEADERS) + 1];
        match self.socket.recv(&mut buf) {
            Ok(len) => {
                buf.truncate(len);
                self.accept(&buf);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Wraps a datagram from the server into an IPv4/UDP packet for the device.
    fn accept(&mut self, payload: &[u8]) {
        match self.wrap(payload) {
            Some(packet) if self.inbox.len() < INBOX => {
                self.inbox.push_back(packet);
                self.stats.to_device += 1;
            }
            _ => self.stats.dropped_in += 1,
        }
    }

    /// The IPv4/UDP packet carrying `payload` from the virtual server to the device.
    pub fn wrap(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let device_port = self.device_port?;
        let IpAddress::Ipv4(server_ip) = self.virtual_server.addr;
        let len = HEADERS + payload.len();
        if len > self.mtu {
            return None;
        }
        let ip = Ipv4Repr {
            src_addr: server_ip,
            dst_addr: self.device_ip,
            next_header: IpProtocol::Udp,
            payload_len: 8 + payload.len(),
            hop_limit: 64,
        };
        let udp = UdpRepr {
            src_port: self.virtual_server.port,
            dst_port: device_port,
        };
        let caps = ChecksumCapabilities::default();
        let mut buf = vec![0u8; len];
        let mut packet = Ipv4Packet::new_unchecked(&mut buf[..]);
        ip.emit(&mut packet, &caps);
        udp.emit(
            &mut UdpPacket::new_unchecked(packet.payload_mut()),
            &IpAddress::Ipv4(server_ip),
            &IpAddress::Ipv4(self.device_ip),
            payload.len(),
            |out| out.copy_from_slice(payload),
            &caps,
        );
        Some(buf)
    }

    /// Unwraps a packet from the device: its UDP payload if it goes to the virtual
    /// server and its checksums hold.
    fn unwrap<'p>(&mut self, packet: &'p [u8]) -> Option<&'p [u8]> {
        let caps = ChecksumCapabilities::default();
        let ip = Ipv4Packet::new_checked(packet).ok()?;
        let ip_repr = Ipv4Repr::parse(&ip, &caps).ok()?;
        if ip_repr.next_header != IpProtocol::Udp
            || ip_repr.src_addr != self.device_ip
            || IpAddress::Ipv4(ip_repr.dst_addr) != self.virtual_server.addr
        {
            return None;
        }
        let udp = UdpPacket::new_checked(ip.payload()).ok()?;
        let src = IpAddress::Ipv4(ip_repr.src_addr);
        let dst = IpAddress::Ipv4(ip_repr.dst_addr);
        if !udp.verify_checksum(&src, &dst) || udp.dst_port() != self.virtual_server.port {
            return None;
        }
        self.device_port = Some(udp.src_port());
        // `new_checked` bounded the UDP length by the IP payload.
        let start = usize::from(ip.header_len()) + 8;
        let end = usize::from(ip.header_len()) + usize::from(udp.len());
        packet.get(start..end)
    }

    fn send(&mut self, packet: &[u8]) {
        match self.unwrap(packet) {
            Some(payload) => {
                // A full host buffer or an unreachable server loses the datagram, as
                // any network may: the client retransmits.
                let _ = self.socket.send(payload);
                self.stats.to_server += 1;
            }
            None => self.stats.dropped_out += 1,
        }
    }
}

/// A packet from the server, for the stack.
#[derive(Debug)]
pub struct BridgeRxToken {
    packet: Vec<u8>,
}

/// Room for a packet from the stack, sent on when filled.
#[derive(Debug)]
pub struct BridgeTxToken<'a> {
    bridge: &'a mut UdpBridge,
}

impl phy::RxToken for BridgeRxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.packet)
    }
}

impl phy::TxToken for BridgeTxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = vec![0u8; len];
        let result = f(&mut packet);
        self.bridge.send(&packet);
        result
    }
}

impl Device for UdpBridge {
    type RxToken<'a> = BridgeRxToken;
    type TxToken<'a> = BridgeTxToken<'a>;

    fn receive(&mut self, _: Instant) -> Option<(BridgeRxToken, BridgeTxToken<'_>)> {
        if self.inbox.is_empty() {
            // Errors other than "nothing there" surface through `wait`.
            let _ = self.pull();
        }
        let packet = self.inbox.pop_front()?;
        Some((BridgeRxToken { packet }, BridgeTxToken { bridge: self }))
    }

    fn transmit(&mut self, _: Instant) -> Option<BridgeTxToken<'_>> {
        Some(BridgeTxToken { bridge: self })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_unwraps_with_valid_checksums() {
        let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let device = Ipv4Address::new(10, 42, 0, 2);
        let virt = IpEndpoint::new(IpAddress::v4(10, 42, 0, 1), 12345);
        let mut bridge = UdpBridge::new(server, device, virt, 1500).unwrap();
        assert_eq!(bridge.wrap(b"x"), None, "no device port learnt yet");

        // A packet as the device would send it (built by the same code, reversed).
        bridge.device_port = Some(40000);
        let from_server = bridge.wrap(b"hello").unwrap();
        let ip = Ipv4Packet::new_checked(&from_server[..]).unwrap();
        assert!(ip.verify_checksum());
        let repr = Ipv4Repr::parse(&ip, &ChecksumCapabilities::default()).unwrap();
        assert_eq!(repr.dst_addr, device);
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(udp.verify_checksum(&virt.addr, &IpAddress::Ipv4(device)));
        assert_eq!((udp.src_port(), udp.dst_port()), (12345, 40000));
        assert_eq!(udp.payload(), b"hello");

        // Swap it around: the device to the server.
        let mut to_server = from_server.clone();
        let mut ip = Ipv4Packet::new_unchecked(&mut to_server[..]);
        ip.set_src_addr(device);
        ip.set_dst_addr(Ipv4Address::new(10, 42, 0, 1));
        ip.fill_checksum();
        let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
        udp.set_src_port(40001);
        udp.set_dst_port(12345);
        udp.fill_checksum(&IpAddress::Ipv4(device), &virt.addr);
        assert_eq!(bridge.unwrap(&to_server), Some(&b"hello"[..]));
        assert_eq!(bridge.device_port, Some(40001));

        // A corrupted checksum is refused.
        let last = to_server.len() - 1;
        to_server[last] ^= 1;
        assert_eq!(bridge.unwrap(&to_server), None);
    }
}
