//! The raw-smoltcp driver: a [`Node`] over one smoltcp interface and one UDP socket,
//! for any [`smoltcp::phy::Device`] (a NIC driver, the PC bridge, a TUN interface).
//! It only moves datagrams and time: the application is the [`Node`].

use crate::node::{Error, Lines, Node, Output};
use crate::{MAX_DATAGRAM, MAX_SEND_DATAGRAM, UDP_PACKETS, UDP_RX_PAYLOAD, UDP_TX_PAYLOAD};
use chat_core::session::Dropped;
use core::fmt;
use rand_core::CryptoRng;
use smoltcp::iface::{
    Config as IfaceConfig, Interface, PollIngressSingleResult, SocketHandle, SocketSet,
    SocketStorage,
};
use smoltcp::phy::{Device, Medium};
use smoltcp::socket::udp;
use smoltcp::wire::{HardwareAddress, IpCidr, IpEndpoint, Ipv4Address, Ipv4Cidr};

/// Packets taken from the device in one [`App::poll`], so a flood cannot starve the
/// rest of the main loop.
const MAX_INGRESS_PER_POLL: usize = 16;

/// A monotonic clock in milliseconds from any origin (boot, typically: zero at reset).
pub trait Clock {
    /// Milliseconds now; never decreasing.
    fn now_millis(&mut self) -> u64;
}

impl<F: FnMut() -> u64> Clock for F {
    fn now_millis(&mut self) -> u64 {
        self()
    }
}

/// The socket table and the UDP rings' metadata (about 100 bytes). Their empty state is
/// not all zeros, so a `static` of it lands in `.data` (flash and RAM): that is why the
/// big, zeroed [`Payload`] is separate (`.bss`, RAM only).
pub struct Metadata<'a> {
    sockets: [SocketStorage<'a>; 1],
    rx: [udp::PacketMetadata; UDP_PACKETS],
    tx: [udp::PacketMetadata; UDP_PACKETS],
}

impl Metadata<'_> {
    /// Empty; `const`, so it can initialise a `static`.
    pub const fn new() -> Self {
        Self {
            sockets: [SocketStorage::EMPTY; 1],
            rx: [udp::PacketMetadata::EMPTY; UDP_PACKETS],
            tx: [udp::PacketMetadata::EMPTY; UDP_PACKETS],
        }
    }
}

impl Default for Metadata<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Metadata<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata").finish_non_exhaustive()
    }
}

/// The byte buffers: the UDP socket's receive and transmit rings, and the scratch
/// buffer where a datagram is opened in place or sealed. About 3.1 KiB, all zeros.
pub struct Payload {
    rx: [u8; UDP_RX_PAYLOAD],
    tx: [u8; UDP_TX_PAYLOAD],
    scratch: [u8; MAX_DATAGRAM],
}

impl Payload {
    /// Zeroed; `const`, so it can initialise a `static` (in `.bss`).
    pub const fn new() -> Self {
        Self {
            rx: [0; UDP_RX_PAYLOAD],
            tx: [0; UDP_TX_PAYLOAD],
            scratch: [0; MAX_DATAGRAM],
        }
    }
}

impl Default for Payload {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload").finish_non_exhaustive()
    }
}

/// Every buffer the application needs, owned by the caller (`static`s on firmware).
/// See the [crate docs](crate) for the sizes.
#[derive(Debug)]
pub struct Buffers<'a> {
    /// The socket table and ring metadata.
    pub metadata: &'a mut Metadata<'a>,
    /// The byte buffers.
    pub payload: &'a mut Payload,
}

/// Where the device is on the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// The device's address and subnet.
    pub address: Ipv4Cidr,
    /// The router, for a server outside the subnet.
    pub gateway: Option<Ipv4Address>,
    /// The device's UDP port; 0 picks a random one in 49152..=65535.
    pub local_port: u16,
    /// The chat server.
    pub server: IpEndpoint,
}

/// The device application on smoltcp. See the [crate docs](crate) for the loop.
pub struct App<'a, D, C, R, L> {
    device: D,
    clock: C,
    iface: Interface,
    sockets: SocketSet<'a>,
    udp: SocketHandle,
    server: IpEndpoint,
    node: Node<'a, R, L>,
    scratch: &'a mut [u8; MAX_DATAGRAM],
}

impl<D, C, R: CryptoRng, L> fmt::Debug for App<'_, D, C, R, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("server", &self.server)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// A device, its medium, and the link-layer address the interface takes on it.
struct Link<D> {
    medium: Medium,
    hardware: HardwareAddress,
    device: D,
}

fn net_instant(millis: u64) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_millis(i64::try_from(millis).unwrap_or(i64::MAX))
}

impl<'a, D: Device, C: Clock, R: CryptoRng, L: Lines> App<'a, D, C, R, L> {
    /// Brings up the interface and the socket over an IP device (`Medium::Ip`: a TUN
    /// interface, the PC bridge, a modem) for `node`. `seed` (from the RNG) seeds
    /// smoltcp and picks the ephemeral port if `net.local_port` is 0.
    pub fn new(
        node: Node<'a, R, L>,
        net: &NetConfig,
        seed: u64,
        device: D,
        clock: C,
        buffers: Buffers<'a>,
    ) -> Result<Self, Error> {
        let link = Link {
            medium: Medium::Ip,
            hardware: HardwareAddress::Ip,
            device,
        };
        Self::start(node, net, seed, link, clock, buffers)
    }

    /// As [`new`](Self::new), over an Ethernet NIC (`Medium::Ethernet`) whose station
    /// address is `mac`: smoltcp then resolves the gateway (or the server, on the same
    /// subnet) with ARP and answers ARP for `net.address`.
    #[cfg(feature = "ethernet")]
    pub fn new_ethernet(
        node: Node<'a, R, L>,
        net: &NetConfig,
        seed: u64,
        (device, mac): (D, smoltcp::wire::EthernetAddress),
        clock: C,
        buffers: Buffers<'a>,
    ) -> Result<Self, Error> {
        let link = Link {
            medium: Medium::Ethernet,
            hardware: HardwareAddress::Ethernet(mac),
            device,
        };
        Self::start(node, net, seed, link, clock, buffers)
    }

    fn start(
        node: Node<'a, R, L>,
        net: &NetConfig,
        seed: u64,
        link: Link<D>,
        mut clock: C,
        buffers: Buffers<'a>,
    ) -> Result<Self, Error> {
        let Link {
            medium,
            hardware,
            mut device,
        } = link;
        // smoltcp panics on a mismatch: refuse it instead.
        if medium != device.capabilities().medium {
            return Err(Error::Medium);
        }
        let Metadata {
            sockets,
            rx: rx_meta,
            tx: tx_meta,
        } = buffers.metadata;
        let Payload {
            rx: rx_payload,
            tx: tx_payload,
            scratch,
        } = buffers.payload;
        let now = net_instant(clock.now_millis());

        let mut config = IfaceConfig::new(hardware);
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut device, now);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::Ipv4(net.address));
        });
        if let Some(gateway) = net.gateway {
            iface
                .routes_mut()
                .add_default_ipv4_route(gateway)
                .map_err(|_| Error::Route)?;
        }

        let mut socket = udp::Socket::new(
            udp::PacketBuffer::new(&mut rx_meta[..], &mut rx_payload[..]),
            udp::PacketBuffer::new(&mut tx_meta[..], &mut tx_payload[..]),
        );
        socket
            .bind(local_port(net.local_port, seed))
            .map_err(|_| Error::Bind)?;
        let mut sockets = SocketSet::new(&mut sockets[..]);
        let udp = sockets.add(socket);

        Ok(Self {
            device,
            clock,
            iface,
            sockets,
            udp,
            server: net.server,
            node,
            scratch,
        })
    }

    /// The device clock now, milliseconds.
    pub fn now(&mut self) -> u64 {
        self.clock.now_millis()
    }

    /// The application.
    pub fn node(&self) -> &Node<'a, R, L> {
        &self.node
    }

    /// The application, e.g. to [`leave`](Node::leave).
    pub fn node_mut(&mut self) -> &mut Node<'a, R, L> {
        &mut self.node
    }

    /// The network device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The network device, e.g. to wait on it.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// One round of the main loop: hands the node what the network brought, runs it,
    /// and sends what it has to send; every report goes to `out` as it happens.
    pub fn poll(&mut self, out: &mut impl Output) {
        let now = self.clock.now_millis();
        let net_now = net_instant(now);

        self.iface.poll_maintenance(net_now);
        for _ in 0..MAX_INGRESS_PER_POLL {
            let result =
                self.iface
                    .poll_ingress_single(net_now, &mut self.device, &mut self.sockets);
            self.receive(now, out);
            if result == PollIngressSingleResult::None {
                break;
            }
        }
        self.node.poll(now, out);
        self.transmit(now, net_now);
    }

    /// When [`poll`](Self::poll) should run again at the latest, in device clock
    /// milliseconds (earlier if the network brings something).
    pub fn poll_at(&mut self) -> Option<u64> {
        let now = self.clock.now_millis();
        let net = self
            .iface
            .poll_at(net_instant(now), &self.sockets)
            .map(|at| u64::try_from(at.total_millis()).unwrap_or(0));
        [net, self.node.poll_at()].into_iter().flatten().min()
    }

    /// Hands every datagram the socket holds to the node.
    fn receive(&mut self, now: u64, out: &mut impl Output) {
        loop {
            let socket = self.sockets.get_mut::<udp::Socket<'_>>(self.udp);
            let Ok((payload, meta)) = socket.recv() else {
                break;
            };
            if meta.endpoint != self.server {
                self.node.foreign();
                continue;
            }
            let Some(datagram) = self.scratch.get_mut(..payload.len()) else {
                self.node.dropped(Dropped::TooLong);
                continue;
            };
            datagram.copy_from_slice(payload);
            self.node.handle_datagram(now, datagram, out);
        }
    }

    /// Moves what the node has to send into the socket, and the socket's datagrams
    /// onto the device.
    fn transmit(&mut self, now: u64, net_now: smoltcp::time::Instant) {
        loop {
            if !self.has_room() {
                self.iface
                    .poll_egress(net_now, &mut self.device, &mut self.sockets);
                if !self.has_room() {
                    // The device is busy: the rest waits for the next round (nothing
                    // is taken from the node, so nothing is lost).
                    break;
                }
            }
            let Some(len) = self.node.poll_transmit(now, &mut self.scratch[..]) else {
                break;
            };
            let socket = self.sockets.get_mut::<udp::Socket<'_>>(self.udp);
            let sent = self
                .scratch
                .get(..len)
                .is_some_and(|datagram| socket.send_slice(datagram, self.server).is_ok());
            self.node.transmitted(sent);
        }
        self.iface
            .poll_egress(net_now, &mut self.device, &mut self.sockets);
    }

    /// Whether the socket can take the longest datagram the node may produce.
    fn has_room(&self) -> bool {
        let socket = self.sockets.get::<udp::Socket<'_>>(self.udp);
        socket.can_send()
            && socket
                .payload_send_capacity()
                .saturating_sub(socket.send_queue())
                >= MAX_SEND_DATAGRAM
    }
}

/// `port`, or for 0 an ephemeral port (49152..=65535, as a NAT on the way expects)
/// drawn from `seed`.
pub fn local_port(port: u16, seed: u64) -> u16 {
    match port {
        0 => 49152 + ((seed >> 48) % 16384) as u16,
        port => port,
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::node::DeviceClient;
    use crate::stub::StubDevice;

    /// A do-nothing RNG, for sizes only.
    struct NoRng;
    impl rand_core::TryRng for NoRng {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(4)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            Ok(4)
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            dst.fill(4);
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for NoRng {}

    /// An IP device handed to the Ethernet constructor is refused, not a smoltcp panic.
    #[cfg(feature = "ethernet")]
    #[test]
    fn medium_mismatch_is_an_error() {
        use crate::node::Behaviour;
        use chat_core::fernet::Key;
        use chat_core::session::ClientConfig;
        use smoltcp::wire::{EthernetAddress, IpAddress};
        let (mut rx, mut tx) = ([0u8; 64], [0u8; 64]);
        let mut metadata = Metadata::new();
        let mut payload = Box::new(Payload::new());
        let net = NetConfig {
            address: Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 15), 24),
            gateway: Some(Ipv4Address::new(10, 0, 2, 2)),
            local_port: 0,
            server: IpEndpoint::new(IpAddress::v4(10, 0, 2, 2), 9),
        };
        let node = Node::new(
            &ClientConfig::new("board", "lobby"),
            Key::from_bytes(&[7; 32]),
            NoRng,
            0,
            Behaviour::default(),
            (),
        )
        .unwrap();
        let result = App::new_ethernet(
            node,
            &net,
            4,
            (
                StubDevice::dropping(&mut rx, &mut tx),
                EthernetAddress([2, 0, 0, 0, 0, 1]),
            ),
            || 0,
            Buffers {
                metadata: &mut metadata,
                payload: &mut payload,
            },
        );
        assert_eq!(result.err(), Some(Error::Medium));
    }

    /// The RAM the application needs besides its stack frames, measured here on a
    /// 64-bit host (a 32-bit MCU needs a little less): it must leave room for the stack
    /// in a 16 KiB budget.
    #[test]
    fn ram_budget() {
        type Fw = App<'static, StubDevice<'static>, fn() -> u64, NoRng, ()>;
        let sizes = [
            ("App", size_of::<Fw>()),
            ("Node", size_of::<Node<'static, NoRng, ()>>()),
            ("DeviceClient", size_of::<DeviceClient<NoRng>>()),
            ("Interface", size_of::<Interface>()),
            ("Metadata", size_of::<Metadata<'static>>()),
            ("Payload", size_of::<Payload>()),
        ];
        std::println!("{sizes:?}");
        let total: usize = sizes
            .iter()
            .filter(|(n, _)| !matches!(*n, "Node" | "DeviceClient" | "Interface"))
            .map(|(_, s)| s)
            .sum();
        assert!(total <= 8 * 1024, "{sizes:?}");
    }
}
