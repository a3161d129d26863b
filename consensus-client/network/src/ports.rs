//! Free ports on loopback for test networks (`qoin-testnet up` and the multi-node tests).

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};

/// The lowest port of the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), from
/// which the local ends of outgoing connections are taken.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A port free on 127.0.0.1 for both TCP and UDP (a p2p port serves QUIC too), from below the
/// kernel's ephemeral range, and not in `taken` (to which it is added).
///
/// Why not port 0's answer: a port from the ephemeral range can become the local end of any
/// outgoing connection between the moment it is chosen and the moment the node binds it,
/// which happened (a node's p2p port went to another program's connection and the node could
/// not listen). A port below the range is taken only by a program that binds it on purpose,
/// and the bind here checks that none has. Tried at random, so two processes choosing at once
/// rarely try the same ones; after 200 misses, the kernel's choice.
pub fn free_loopback_port(taken: &mut HashSet<u16>) -> std::io::Result<u16> {
    let (low, high) = (10_000u16, ephemeral_low().max(11_000));
    for _ in 0..200 {
        let mut r = [0u8; 2];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut r);
        let port = low + u16::from_le_bytes(r) % (high - low);
        if !taken.contains(&port)
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            taken.insert(port);
            return Ok(port);
        }
    }
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    taken.insert(port);
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_distinct_and_below_the_ephemeral_range() {
        let mut taken = HashSet::new();
        let ports: Vec<u16> = (0..50).map(|_| free_loopback_port(&mut taken).unwrap()).collect();
        assert_eq!(taken.len(), 50, "no port twice");
        assert!(ports.iter().all(|p| *p >= 10_000 && *p < ephemeral_low().max(11_000)), "{ports:?}");
        // Each can be bound.
        let _held: Vec<TcpListener> =
            ports.iter().map(|p| TcpListener::bind(("127.0.0.1", *p)).unwrap()).collect();
    }
}
