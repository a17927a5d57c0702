//! Whether this machine has a route to an address at all. A container or host without IPv6
//! egress (common in Kubernetes) cannot reach any AAAA address; probing them would blame every
//! dual-stack domain for the exporter's own network. A UDP socket's `connect` selects the route
//! and source address without sending a packet, so it tells "no route from here" apart from
//! anything the remote side does.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};

/// Why an address cannot be reached from this machine, or `None` when it has a route (whatever
/// then happens on the way).
pub fn no_route(address: IpAddr) -> Option<String> {
    let local: IpAddr = match address {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = match UdpSocket::bind(SocketAddr::new(local, 0)) {
        Ok(socket) => socket,
        // No socket of the family at all (IPv6 disabled in the kernel: EAFNOSUPPORT, 97 on
        // Linux, or no address of the family to bind).
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::AddrNotAvailable | ErrorKind::Unsupported
            ) || e.raw_os_error() == Some(97) =>
        {
            return Some(e.to_string())
        }
        // Anything else (out of file descriptors, say) says nothing about routes: the probe
        // itself meets and reports it.
        Err(_) => return None,
    };
    match socket.connect(SocketAddr::new(address, 9)) {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::NetworkUnreachable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::AddrNotAvailable
            ) =>
        {
            Some(e.to_string())
        }
        // Anything else (a full file table, a permission) is not a missing route: the
        // probe itself meets and reports it.
        _ => None,
    }
}

static WARNED_V4: AtomicBool = AtomicBool::new(false);
static WARNED_V6: AtomicBool = AtomicBool::new(false);

/// Logs once per family and process that addresses of that family are unreachable from here.
pub fn warn_once(address: IpAddr, why: &str) {
    let (flag, family) = match address {
        IpAddr::V4(_) => (&WARNED_V4, "IPv4"),
        IpAddr::V6(_) => (&WARNED_V6, "IPv6"),
    };
    if !flag.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            msg = "this machine has no route to addresses of a family: they are not probed, and hosts reachable only over it are reported unreachable_from_exporter; set ip_families to the families the exporter's network has",
            family,
            first = %address,
            err = why
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_routable_in_both_families() {
        assert_eq!(no_route(Ipv4Addr::LOCALHOST.into()), None);
        assert_eq!(no_route(Ipv6Addr::LOCALHOST.into()), None);
    }
}
