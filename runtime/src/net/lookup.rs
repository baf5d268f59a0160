//! DNS resolution that never stalls the hub: `getaddrinfo` on the thread pool.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::threadpool::spawn_blocking;
use crate::timeout::with_timeout;

/// Resolves `host` to socket addresses with port `port` (gevent's resolver,
/// `socket.getaddrinfo`), parking only the calling greenlet.
///
/// An IP literal (`"127.0.0.1"`, `"::1"`, `"[::1]"`) is parsed directly and returns
/// at once. A name is resolved by the system resolver (`getaddrinfo`, through
/// [`std::net::ToSocketAddrs`], so `/etc/hosts`, `nsswitch.conf` and `resolv.conf`
/// apply) on the [`default_pool`](crate::threadpool::default_pool): `getaddrinfo`
/// blocks its thread, sometimes for seconds, and must not block the hub. The other
/// greenlets keep running meanwhile.
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr, SocketAddr};
/// use greenweave_runtime::net::lookup_host;
///
/// let addrs = lookup_host("127.0.0.1", 8080, None).unwrap();
/// assert_eq!(addrs, [SocketAddr::from(([127, 0, 0, 1], 8080))]);
///
/// let addrs = lookup_host("localhost", 80, None).unwrap(); // from /etc/hosts
/// assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
/// ```
///
/// With a `timeout`, the caller gives up after it. The `getaddrinfo` call itself
/// cannot be interrupted: it finishes in the background, holding a pool thread until
/// then.
///
/// # Errors
///
/// What `getaddrinfo` reports, as std gives it (an unknown name is an
/// [`io::Error`] whose message comes from `gai_strerror`); [`io::ErrorKind::TimedOut`]
/// if `timeout` passes first. A name with no addresses of a usable family may
/// resolve to an empty `Vec`.
///
/// # Panics
///
/// Unwinds if the calling greenlet is killed, or an outer
/// [`Timeout`](crate::Timeout) expires, while it waits.
#[track_caller]
pub fn lookup_host(
    host: &str,
    port: u16,
    timeout: Option<Duration>,
) -> io::Result<Vec<SocketAddr>> {
    if let Some(ip) = parse_ip(host) {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let name = host.to_owned();
    let resolve = move || -> io::Result<Vec<SocketAddr>> {
        Ok((name.as_str(), port).to_socket_addrs()?.collect())
    };
    match timeout {
        None => spawn_blocking(resolve),
        Some(limit) => with_timeout(limit, || spawn_blocking(resolve)).unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("DNS lookup of {host:?} timed out after {limit:?}"),
            ))
        }),
    }
}

/// An IPv4 or IPv6 literal, the latter optionally in brackets.
fn parse_ip(host: &str) -> Option<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    let inner = host.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}
