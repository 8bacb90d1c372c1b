//! The application proper: one smoltcp interface, one UDP socket, one chat client.

use crate::{EVENTS, MAX_DATAGRAM, MAX_SEND_DATAGRAM, OUTBOX, TEXT_LEN};
use crate::{UDP_PACKETS, UDP_RX_PAYLOAD, UDP_TX_PAYLOAD};
use chat_core::fernet::{Key, KeyRing};
use chat_core::session::{Client, ClientConfig, ClientEvent, ClientState, Dropped, SendError};
use chat_core::time::{Instant, WallClock};
use core::fmt;
use rand_core::CryptoRng;
use smoltcp::iface::{
    Config as IfaceConfig, Interface, PollIngressSingleResult, SocketHandle, SocketSet,
    SocketStorage,
};
use smoltcp::phy::{Device, Medium};
use smoltcp::socket::udp;
use smoltcp::wire::{HardwareAddress, IpCidr, IpEndpoint, Ipv4Address, Ipv4Cidr};

/// The chat client as sized for the device (see the [crate docs](crate)).
pub type DeviceClient<R> = Client<R, 0, TEXT_LEN, OUTBOX, EVENTS>;

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

/// Why the application could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The nickname or room is not a valid name (1 to 32 bytes).
    InvalidName,
    /// The UDP socket could not be bound (port 0?).
    Bind,
    /// The gateway could not be set as the default route.
    Route,
    /// The device's medium is not the one this constructor serves (an Ethernet NIC
    /// needs [`App::new_ethernet`], an IP device [`App::new`]).
    Medium,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidName => "the nickname and room must be 1 to 32 bytes",
            Self::Bind => "cannot bind the UDP socket",
            Self::Route => "cannot route through the gateway",
            Self::Medium => "the network device's medium does not match",
        })
    }
}

impl core::error::Error for Error {}

/// Counters, for a status LED or a log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams sent to the server.
    pub sent: u32,
    /// Datagrams the socket could not take (full); the client's timers resend.
    pub send_failed: u32,
    /// Datagrams from the server the client accepted.
    pub received: u32,
    /// Datagrams from anyone else, ignored.
    pub foreign: u32,
    /// Datagrams the client dropped, by [`Dropped::index`].
    pub dropped: [u32; Dropped::ALL.len()],
}

/// The device application. See the [crate docs](crate) for the loop.
pub struct App<'a, D, C, R> {
    device: D,
    clock: C,
    iface: Interface,
    sockets: SocketSet<'a>,
    udp: SocketHandle,
    server: IpEndpoint,
    client: DeviceClient<R>,
    scratch: &'a mut [u8; MAX_DATAGRAM],
    stats: Stats,
}

impl<D, C, R: CryptoRng> fmt::Debug for App<'_, D, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("server", &self.server)
            .field("state", &self.client.state())
            .field("stats", &self.stats)
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

impl<'a, D: Device, C: Clock, R: CryptoRng> App<'a, D, C, R> {
    /// Brings up the interface and the socket over an IP device (`Medium::Ip`: a TUN
    /// interface, the PC bridge, a modem), and starts joining `chat.room` as
    /// `chat.nick`. `chat.max_datagram` is capped at [`MAX_DATAGRAM`].
    pub fn new(
        chat: &ClientConfig<'_>,
        net: &NetConfig,
        key: Key,
        rng: R,
        device: D,
        clock: C,
        buffers: Buffers<'a>,
    ) -> Result<Self, Error> {
        let link = Link {
            medium: Medium::Ip,
            hardware: HardwareAddress::Ip,
            device,
        };
        Self::start(chat, net, key, rng, link, clock, buffers)
    }

    /// As [`new`](Self::new), over an Ethernet NIC (`Medium::Ethernet`) whose station
    /// address is `mac`: smoltcp then resolves the gateway (or the server, on the same
    /// subnet) with ARP and answers ARP for `net.address`.
    #[cfg(feature = "ethernet")]
    pub fn new_ethernet(
        chat: &ClientConfig<'_>,
        net: &NetConfig,
        key: Key,
        rng: R,
        (device, mac): (D, smoltcp::wire::EthernetAddress),
        clock: C,
        buffers: Buffers<'a>,
    ) -> Result<Self, Error> {
        let link = Link {
            medium: Medium::Ethernet,
            hardware: HardwareAddress::Ethernet(mac),
            device,
        };
        Self::start(chat, net, key, rng, link, clock, buffers)
    }

    fn start(
        chat: &ClientConfig<'_>,
        net: &NetConfig,
        key: Key,
        mut rng: R,
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
        let now_ms = clock.now_millis();
        let now = net_instant(now_ms);

        let mut config = IfaceConfig::new(hardware);
        config.random_seed = rng.next_u64();
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
        let port = match net.local_port {
            // An ephemeral port, as a NAT on the way expects.
            0 => 49152 + (rng.next_u32() % 16384) as u16,
            port => port,
        };
        socket.bind(port).map_err(|_| Error::Bind)?;
        let mut sockets = SocketSet::new(&mut sockets[..]);
        let udp = sockets.add(socket);

        let mut chat = *chat;
        chat.max_datagram = chat.max_datagram.min(MAX_DATAGRAM);
        let client = Client::new(
            &chat,
            KeyRing::new(key),
            rng,
            WallClock::default(),
            Instant::from_millis(now_ms),
        )
        .ok_or(Error::InvalidName)?;

        Ok(Self {
            device,
            clock,
            iface,
            sockets,
            udp,
            server: net.server,
            client,
            scratch,
            stats: Stats::default(),
        })
    }

    /// The device clock now.
    pub fn now(&mut self) -> Instant {
        Instant::from_millis(self.clock.now_millis())
    }

    /// Queues a line for the room; see [`Client::send`].
    pub fn send(&mut self, text: &str) -> Result<u32, SendError> {
        self.client.send(text)
    }

    /// Says goodbye; the session closes when the server answers or after a short wait.
    pub fn leave(&mut self) {
        let now = self.now();
        self.client.leave(now);
    }

    /// Where the client is.
    pub fn state(&self) -> ClientState {
        self.client.state()
    }

    /// The chat client, to read its state.
    pub fn client(&self) -> &DeviceClient<R> {
        &self.client
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The network device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The network device, e.g. to wait on it.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// One round of the main loop: takes what the network brought to the client, runs
    /// the client's timers, sends what it has to send, and hands every event to
    /// `on_event` as soon as it happens (so a small event queue never fills).
    pub fn poll(&mut self, mut on_event: impl FnMut(ClientEvent<TEXT_LEN>)) {
        let now_ms = self.clock.now_millis();
        let now = Instant::from_millis(now_ms);
        let net_now = net_instant(now_ms);

        self.iface.poll_maintenance(net_now);
        for _ in 0..MAX_INGRESS_PER_POLL {
            let result =
                self.iface
                    .poll_ingress_single(net_now, &mut self.device, &mut self.sockets);
            self.receive(now, &mut on_event);
            if result == PollIngressSingleResult::None {
                break;
            }
        }
        if self.client.poll_timeout().is_some_and(|at| at <= now) {
            self.client.handle_timeout(now);
        }
        self.transmit(now, net_now);
        self.drain(&mut on_event);
    }

    /// When [`poll`](Self::poll) should run again at the latest, in device clock
    /// milliseconds (earlier if the network brings something).
    pub fn poll_at(&mut self) -> Option<u64> {
        let now_ms = self.clock.now_millis();
        let net = self
            .iface
            .poll_at(net_instant(now_ms), &self.sockets)
            .map(|at| u64::try_from(at.total_millis()).unwrap_or(0));
        let client = self.client.poll_timeout().map(Instant::millis);
        match (net, client) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn drain(&mut self, on_event: &mut impl FnMut(ClientEvent<TEXT_LEN>)) {
        while let Some(event) = self.client.poll_event() {
            on_event(event);
        }
    }

    /// Hands every datagram the socket holds to the client.
    fn receive(&mut self, now: Instant, on_event: &mut impl FnMut(ClientEvent<TEXT_LEN>)) {
        loop {
            let socket = self.sockets.get_mut::<udp::Socket<'_>>(self.udp);
            let Ok((payload, meta)) = socket.recv() else {
                break;
            };
            if meta.endpoint != self.server {
                self.stats.foreign = self.stats.foreign.saturating_add(1);
                continue;
            }
            let len = payload.len();
            let Some(datagram) = self.scratch.get_mut(..len) else {
                count(&mut self.stats, Dropped::TooLong);
                continue;
            };
            datagram.copy_from_slice(payload);
            match self.client.handle_datagram(now, datagram) {
                Ok(()) => self.stats.received = self.stats.received.saturating_add(1),
                Err(reason) => count(&mut self.stats, reason),
            }
            self.drain(on_event);
        }
    }

    /// Moves what the client has to send into the socket, and the socket's datagrams
    /// onto the device.
    fn transmit(&mut self, now: Instant, net_now: smoltcp::time::Instant) {
        loop {
            if !self.has_room() {
                self.iface
                    .poll_egress(net_now, &mut self.device, &mut self.sockets);
                if !self.has_room() {
                    // The device is busy: the rest waits for the next round (nothing
                    // is taken from the client, so nothing is lost).
                    break;
                }
            }
            let Some(len) = self.client.poll_transmit(now, &mut self.scratch[..]) else {
                break;
            };
            let socket = self.sockets.get_mut::<udp::Socket<'_>>(self.udp);
            let sent = self
                .scratch
                .get(..len)
                .is_some_and(|datagram| socket.send_slice(datagram, self.server).is_ok());
            if sent {
                self.stats.sent = self.stats.sent.saturating_add(1);
            } else {
                self.stats.send_failed = self.stats.send_failed.saturating_add(1);
            }
        }
        self.iface
            .poll_egress(net_now, &mut self.device, &mut self.sockets);
    }

    /// Whether the socket can take the longest datagram the client may produce.
    fn has_room(&self) -> bool {
        let socket = self.sockets.get::<udp::Socket<'_>>(self.udp);
        socket.can_send()
            && socket
                .payload_send_capacity()
                .saturating_sub(socket.send_queue())
                >= MAX_SEND_DATAGRAM
    }
}

fn count(stats: &mut Stats, reason: Dropped) {
    if let Some(n) = stats.dropped.get_mut(reason.index()) {
        *n = n.saturating_add(1);
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
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
        let result = App::new_ethernet(
            &ClientConfig::new("board", "lobby"),
            &net,
            Key::from_bytes(&[7; 32]),
            NoRng,
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
        type Fw = App<'static, StubDevice<'static>, fn() -> u64, NoRng>;
        let sizes = [
            ("App", size_of::<Fw>()),
            ("DeviceClient", size_of::<DeviceClient<NoRng>>()),
            ("Interface", size_of::<Interface>()),
            ("Metadata", size_of::<Metadata<'static>>()),
            ("Payload", size_of::<Payload>()),
        ];
        std::println!("{sizes:?}");
        let total: usize = sizes
            .iter()
            .filter(|(n, _)| *n != "DeviceClient" && *n != "Interface")
            .map(|(_, s)| s)
            .sum();
        assert!(total <= 8 * 1024, "{sizes:?}");
    }
}
