//! Who is at the other end of a loopback connection: the session of the
//! process that holds the peer's socket, read from `/proc` as any process
//! may read it about processes of its own user, with no privilege.
//!
//! An environment's Runtime API listens on 127.0.0.1, where every process
//! of the pod can connect, and a port number is no secret: any process of
//! the same user reads it from the runtime's `/proc/<pid>/environ`. So each
//! environment starts its processes in sessions of their own (`setsid`,
//! which no process can undo or join from outside: `setpgid` into another
//! session is refused), and its Runtime API serves a connection only when
//! the process holding the peer's socket belongs to one of those sessions.
//!
//! How: the peer's socket is the line of `/proc/net/tcp` whose local
//! address is the connection's remote one and whose remote address is the
//! listener's; its inode is then looked for among the open files of the
//! processes of the allowed sessions (`/proc/<pid>/fd/*` links read
//! `socket:[inode]`). A connection is checked once, when it is accepted; a
//! runtime keeps its connections, so this runs a handful of times per
//! environment, not per invocation. A `/proc/net/tcp` of 1,400 sockets is
//! about 200 KB, read in well under a millisecond.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};

/// Whether the process holding the socket at `peer`, connected to `local`,
/// belongs to one of `sessions`. Errors (a `/proc` that cannot be read)
/// count as no: the check fails closed.
pub fn in_sessions(local: SocketAddr, peer: SocketAddr, sessions: &[i32]) -> bool {
    match socket_inode(local, peer) {
        Ok(Some(inode)) => held_in(inode, sessions).unwrap_or(false),
        _ => false,
    }
}

/// The inode of the socket whose local end is `peer` and remote end
/// `local`: the other end of a connection accepted on `local`.
fn socket_inode(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<u64>> {
    let (SocketAddr::V4(local), SocketAddr::V4(peer)) = (local, peer) else {
        return Ok(None);
    };
    let table = std::fs::read_to_string("/proc/net/tcp")?;
    let want_local = hex_address(*peer.ip(), peer.port());
    let want_remote = hex_address(*local.ip(), local.port());
    // "sl local_address rem_address st tx_queue:rx_queue tr:tm->when
    // retrnsmt uid timeout inode ..."
    Ok(table.lines().skip(1).find_map(|line| {
        let mut fields = line.split_ascii_whitespace();
        let (_, l, r) = (fields.next()?, fields.next()?, fields.next()?);
        if l != want_local || r != want_remote {
            return None;
        }
        fields.nth(6)?.parse().ok()
    }))
}

/// An address as `/proc/net/tcp` writes it: the IPv4 address as a 32-bit
/// number in the host's byte order, then the port, in upper-case hex.
fn hex_address(ip: Ipv4Addr, port: u16) -> String {
    format!("{:08X}:{port:04X}", u32::from_ne_bytes(ip.octets()))
}

/// Whether a process of one of `sessions` has socket `inode` open.
fn held_in(inode: u64, sessions: &[i32]) -> io::Result<bool> {
    let sessions: HashSet<i32> = sessions.iter().copied().collect();
    let link = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if !session_of(pid).is_some_and(|sid| sessions.contains(&sid)) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == &*link) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The session id of process `pid` (the sixth field of its `stat`, after
/// the command name, which may itself hold spaces and parentheses).
fn session_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // state ppid pgrp session
    after_name.split_ascii_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn addresses_are_written_as_the_kernel_writes_them() {
        // 127.0.0.1:8080 on a little-endian machine.
        if cfg!(target_endian = "little") {
            assert_eq!(hex_address(Ipv4Addr::LOCALHOST, 8080), "0100007F:1F90");
        }
    }

    /// This process's own connection is found, and is ours: in our session,
    /// not in another.
    #[test]
    fn the_peer_of_a_loopback_connection_is_found_in_its_session() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (accepted, peer) = listener.accept().expect("accept");
        let local = accepted.local_addr().expect("local");
        assert_eq!(peer, client.local_addr().expect("client"));
        let ours = session_of(std::process::id() as i32).expect("our session");
        assert!(in_sessions(local, peer, &[ours]));
        assert!(!in_sessions(local, peer, &[ours + 1_000_000]));
        assert!(!in_sessions(local, peer, &[]));
        // A connection that is not there.
        let gone = SocketAddr::from((Ipv4Addr::LOCALHOST, 1));
        assert!(!in_sessions(local, gone, &[ours]));
    }
}
