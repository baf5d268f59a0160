//! Socket addresses: greenweave's `ToSocketAddrs`, resolving names without blocking
//! the thread.

use std::io::{self, ErrorKind};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Instant;

/// What can be turned into socket addresses: the same types as
/// [`std::net::ToSocketAddrs`] (`SocketAddr`, `(IpAddr, u16)`, `"host:port"`,
/// `("host", port)`, `&[SocketAddr]`, ...).
///
/// IP literals are parsed on the spot. Host names are resolved by
/// [`lookup_host`](super::lookup_host), which runs the system resolver off the hub's
/// thread and parks only the calling greenlet; with a `*_timeout` call the time spent
/// resolving counts against the timeout. Calls that take several addresses try them in
/// order, as std does.
///
/// The trait is sealed: its method is an implementation detail.
///
/// ```
/// use greenweave_runtime::net::UdpSocket;
/// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let b = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
/// a.send_to(b"hi", b.local_addr().unwrap()).unwrap();
/// let mut buf = [0; 2];
/// assert_eq!(b.recv_from(&mut buf).unwrap(), (2, a.local_addr().unwrap()));
/// ```
pub trait ToSocketAddrs: sealed::Resolve {}

pub(super) mod sealed {
    use std::io;
    use std::net::SocketAddr;
    use std::time::Instant;

    /// The hidden half of [`ToSocketAddrs`](super::ToSocketAddrs).
    pub trait Resolve {
        /// The addresses, resolving names by `deadline`.
        fn resolve(&self, deadline: Option<Instant>) -> io::Result<Addrs>;
    }

    /// Resolved addresses, without allocating for the common single-address case.
    #[derive(Debug)]
    pub enum Addrs {
        /// One address (a literal).
        One(Option<SocketAddr>),
        /// The result of a lookup.
        Many(std::vec::IntoIter<SocketAddr>),
    }

    impl Iterator for Addrs {
        type Item = SocketAddr;

        fn next(&mut self) -> Option<SocketAddr> {
            match self {
                Addrs::One(addr) => addr.take(),
                Addrs::Many(addrs) => addrs.next(),
            }
        }
    }
}

use sealed::{Addrs, Resolve};

/// Runs `attempt` on each address in turn; the first success wins, else the last
/// error (std's "could not resolve to any addresses" if there were none).
pub(super) fn each_addr<A, T>(
    addr: &A,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T>
where
    A: ToSocketAddrs + ?Sized,
{
    let mut last = None;
    for addr in addr.resolve(deadline)? {
        match attempt(addr) {
            Ok(done) => return Ok(done),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

/// Every address `addr` resolves to; an error if there are none.
pub(crate) fn resolve_all<A>(addr: &A) -> io::Result<Vec<SocketAddr>>
where
    A: ToSocketAddrs + ?Sized,
{
    let addrs: Vec<SocketAddr> = addr.resolve(None)?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        ));
    }
    Ok(addrs)
}

/// The first address `addr` resolves to.
pub(super) fn first_addr<A>(addr: &A) -> io::Result<SocketAddr>
where
    A: ToSocketAddrs + ?Sized,
{
    addr.resolve(None)?
        .next()
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "no addresses to send data to"))
}

fn one(addr: SocketAddr) -> io::Result<Addrs> {
    Ok(Addrs::One(Some(addr)))
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(ErrorKind::InvalidInput, what)
}

fn resolve_host(host: &str, port: u16, deadline: Option<Instant>) -> io::Result<Addrs> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return one(SocketAddr::new(ip, port));
    }
    let timeout = match deadline {
        Some(at) => {
            let left = at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    ErrorKind::TimedOut,
                    "timed out resolving a host name",
                ));
            }
            Some(left)
        }
        None => None,
    };
    super::lookup_host(host, port, timeout).map(|addrs| Addrs::Many(addrs.into_iter()))
}

fn resolve_str(s: &str, deadline: Option<Instant>) -> io::Result<Addrs> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return one(addr);
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| invalid("invalid socket address"))?;
    let port = port.parse().map_err(|_| invalid("invalid port value"))?;
    resolve_host(host, port, deadline)
}

macro_rules! literal {
    ($($ty:ty),*) => {$(
        impl ToSocketAddrs for $ty {}
        impl Resolve for $ty {
            fn resolve(&self, _: Option<Instant>) -> io::Result<Addrs> {
                one(SocketAddr::from(*self))
            }
        }
    )*};
}

literal!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16),
    ([u8; 4], u16),
    ([u16; 8], u16)
);

impl ToSocketAddrs for str {}
impl Resolve for str {
    fn resolve(&self, deadline: Option<Instant>) -> io::Result<Addrs> {
        resolve_str(self, deadline)
    }
}

impl ToSocketAddrs for String {}
impl Resolve for String {
    fn resolve(&self, deadline: Option<Instant>) -> io::Result<Addrs> {
        resolve_str(self, deadline)
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl Resolve for (&str, u16) {
    fn resolve(&self, deadline: Option<Instant>) -> io::Result<Addrs> {
        resolve_host(self.0, self.1, deadline)
    }
}

impl ToSocketAddrs for (String, u16) {}
impl Resolve for (String, u16) {
    fn resolve(&self, deadline: Option<Instant>) -> io::Result<Addrs> {
        resolve_host(&self.0, self.1, deadline)
    }
}

impl ToSocketAddrs for [SocketAddr] {}
impl Resolve for [SocketAddr] {
    fn resolve(&self, _: Option<Instant>) -> io::Result<Addrs> {
        Ok(Addrs::Many(Vec::from(self).into_iter()))
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrs + ?Sized> Resolve for &T {
    fn resolve(&self, deadline: Option<Instant>) -> io::Result<Addrs> {
        (**self).resolve(deadline)
    }
}
