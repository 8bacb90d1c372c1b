//! Datagrams in batches: up to [`BATCH`] received or sent per system call (`recvmmsg`,
//! `sendmmsg` on Linux; one `recv_from`/`send_to` each elsewhere).
//!
//! The buffers are allocated once ([`Datagrams::new`]) and reused: nothing is allocated
//! per datagram.

use mio::net::UdpSocket;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};

/// Datagrams per system call.
pub const BATCH: usize = 32;

/// Up to [`BATCH`] datagrams with their addresses, in one allocation.
#[derive(Debug)]
pub struct Datagrams {
    data: Vec<u8>,
    stride: usize,
    lens: [usize; BATCH],
    addrs: [SocketAddr; BATCH],
    count: usize,
}

impl Datagrams {
    /// Room for [`BATCH`] datagrams of up to `stride` bytes each.
    pub fn new(stride: usize) -> Self {
        Self {
            data: vec![0; stride * BATCH],
            stride,
            lens: [0; BATCH],
            addrs: [SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)); BATCH],
            count: 0,
        }
    }

    /// Datagrams held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether no more fit.
    pub fn is_full(&self) -> bool {
        self.count == BATCH
    }

    /// Forgets every datagram.
    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// Datagram `i` and its address (where it came from, or goes to).
    pub fn get(&self, i: usize) -> (&[u8], SocketAddr) {
        let start = i * self.stride;
        (&self.data[start..start + self.lens[i]], self.addrs[i])
    }

    /// Datagram `i`, writable (for a machine that opens tokens in place).
    pub fn get_mut(&mut self, i: usize) -> (&mut [u8], SocketAddr) {
        let start = i * self.stride;
        (&mut self.data[start..start + self.lens[i]], self.addrs[i])
    }

    /// The whole buffer of the next free slot, to write a datagram into before
    /// [`push`](Self::push)ing it. Panics when full.
    pub fn next_buf(&mut self) -> &mut [u8] {
        assert!(!self.is_full(), "batch full");
        let start = self.count * self.stride;
        &mut self.data[start..start + self.stride]
    }

    /// Keeps the `len` bytes written at [`next_buf`](Self::next_buf), for `addr`.
    pub fn push(&mut self, len: usize, addr: SocketAddr) {
        self.lens[self.count] = len.min(self.stride);
        self.addrs[self.count] = addr;
        self.count += 1;
    }
}

/// Receives up to [`BATCH`] datagrams into `batch` (emptied first). `peer`: the socket is
/// connected to it (its datagrams are marked as from it). `Err(WouldBlock)` when there
/// is none.
pub fn recv(
    socket: &UdpSocket,
    batch: &mut Datagrams,
    peer: Option<SocketAddr>,
) -> io::Result<usize> {
    batch.clear();
    #[cfg(target_os = "linux")]
    {
        sys::recv(socket, batch, peer)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let stride = batch.stride;
        let buf = batch.next_buf();
        let (n, from) = match peer {
            Some(peer) => socket.recv(buf).map(|n| (n, peer))?,
            None => socket.recv_from(buf)?,
        };
        batch.push(n.min(stride), from);
        Ok(1)
    }
}

/// Sends the datagrams of `batch` from index `from` on, to their addresses (or to the
/// connected peer when `connected`). Returns how many went (at least one), or the error
/// of the first (`WouldBlock` when the socket is full).
pub fn send(
    socket: &UdpSocket,
    batch: &Datagrams,
    from: usize,
    connected: bool,
) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        sys::send(socket, batch, from, connected)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let (datagram, to) = batch.get(from);
        if connected {
            socket.send(datagram)?;
        } else {
            socket.send_to(datagram, to)?;
        }
        Ok(1)
    }
}

/// The two system calls, through `libc` (which mio already depends on). Everything
/// unsafe in this crate is here.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod sys {
    use super::{BATCH, Datagrams};
    use mio::net::UdpSocket;
    use std::io;
    use std::mem::{MaybeUninit, size_of};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd as _;

    fn zeroed_storage() -> libc::sockaddr_storage {
        // SAFETY: sockaddr_storage is plain old data; all zeros is a valid value.
        unsafe { MaybeUninit::zeroed().assume_init() }
    }

    fn zeroed_headers() -> [libc::mmsghdr; BATCH] {
        // SAFETY: mmsghdr is plain old data (integers and raw pointers); all zeros
        // (null pointers, zero lengths) is a valid value.
        unsafe { MaybeUninit::zeroed().assume_init() }
    }

    /// Writes `addr` into `storage`; returns its length.
    fn to_storage(addr: SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write((storage as *mut libc::sockaddr_storage).cast(), sin) };
                size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { std::ptr::write((storage as *mut libc::sockaddr_storage).cast(), sin6) };
                size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }

    /// The address the kernel wrote into `storage`.
    fn from_storage(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match i32::from(storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in (family AF_INET); storage is
                // large enough and aligned for it.
                let sin: libc::sockaddr_in =
                    unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for sockaddr_in6 (family AF_INET6).
                let sin6: libc::sockaddr_in6 =
                    unsafe { std::ptr::read((storage as *const libc::sockaddr_storage).cast()) };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    pub(super) fn recv(
        socket: &UdpSocket,
        batch: &mut Datagrams,
        peer: Option<SocketAddr>,
    ) -> io::Result<usize> {
        let stride = batch.stride;
        let base = batch.data.as_mut_ptr();
        let mut names = [zeroed_storage(); BATCH];
        let mut iovecs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        let mut headers = zeroed_headers();
        for (i, ((iov, header), name)) in iovecs
            .iter_mut()
            .zip(headers.iter_mut())
            .zip(names.iter_mut())
            .enumerate()
        {
            // SAFETY: `data` holds BATCH * stride bytes, so slot i is in bounds.
            iov.iov_base = unsafe { base.add(i * stride) }.cast();
            iov.iov_len = stride;
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        // SAFETY: every header points at a live iovec (into `batch.data`, which is not
        // otherwise borrowed during the call) and a live sockaddr_storage with their true
        // sizes; all of them outlive the call. The kernel writes at most `stride` bytes
        // per datagram and at most `msg_namelen` bytes per address.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = usize::try_from(n).unwrap_or(0).min(BATCH);
        for (header, name) in headers.iter().zip(names.iter()).take(n) {
            let from = peer
                .or_else(|| from_storage(name))
                .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
            batch.push(header.msg_len as usize, from);
        }
        Ok(n)
    }

    pub(super) fn send(
        socket: &UdpSocket,
        batch: &Datagrams,
        from: usize,
        connected: bool,
    ) -> io::Result<usize> {
        let count = batch.count.saturating_sub(from);
        if count == 0 {
            return Ok(0);
        }
        let mut names = [zeroed_storage(); BATCH];
        let mut iovecs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        let mut headers = zeroed_headers();
        for (k, ((iov, header), name)) in iovecs
            .iter_mut()
            .zip(headers.iter_mut())
            .zip(names.iter_mut())
            .take(count)
            .enumerate()
        {
            let (datagram, to) = batch.get(from + k);
            // The kernel only reads through this pointer (sendmmsg), despite `*mut`.
            iov.iov_base = datagram.as_ptr().cast_mut().cast();
            iov.iov_len = datagram.len();
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            if !connected {
                header.msg_hdr.msg_namelen = to_storage(to, name);
                header.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            }
        }
        // SAFETY: the first `count` headers point at live iovecs (into `batch.data`,
        // borrowed for the call) and, unless connected, at live addresses with their
        // lengths; sendmmsg only reads them.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_batches() {
        let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut out = Datagrams::new(100);
        for i in 0..5u8 {
            let buf = out.next_buf();
            buf[..3].copy_from_slice(&[i, i, i]);
            out.push(3, b_addr);
        }
        let mut sent = 0;
        while sent < out.len() {
            sent += send(&a, &out, sent, false).unwrap();
        }
        let mut got = Vec::new();
        let mut batch = Datagrams::new(100);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < 5 && std::time::Instant::now() < deadline {
            match recv(&b, &mut batch, None) {
                Ok(n) => {
                    for i in 0..n {
                        let (d, from) = batch.get(i);
                        assert_eq!(from, a_addr);
                        got.push(d.to_vec());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, (0..5u8).map(|i| vec![i, i, i]).collect::<Vec<_>>());
    }
}
