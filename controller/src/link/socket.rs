//! The UDP socket under the QUIC endpoint, with receive and send buffers sized for a fleet.
//!
//! Every agent's packets arrive on this one socket. The kernel's default receive buffer
//! (208 KiB on Debian) holds ~170 full-size QUIC packets: when thousands of agents reconnect
//! at once after a controller restart, their handshakes overflow it and the kernel drops
//! them (`RcvbufErrors` in `/proc/net/snmp`), so each dropped agent waits out a handshake
//! retransmission and the restart turns into a storm of retries. A few MiB absorb a burst of
//! ten thousand handshakes while the endpoint catches up.
//!
//! An unprivileged process cannot get more than `net.core.rmem_max` (`wmem_max` for sending);
//! the kernel silently caps the request. So the effective size is read back and, where the
//! cap is the reason it is short, the log says which sysctl to raise (docs/operations.md).

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;

use socket2::{Domain, Protocol, Socket, Type};

/// Receive and send buffer asked for by default: 8 MiB, ~6 700 full-size packets.
pub const DEFAULT_SOCKET_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// What the kernel granted (`getsockopt`, which on Linux reports twice the usable size:
/// the doubling is the kernel's bookkeeping allowance) and the caps that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketBuffers {
    pub requested: usize,
    pub receive: usize,
    pub send: usize,
    /// `net.core.rmem_max`, where it can be read.
    pub receive_cap: Option<usize>,
    /// `net.core.wmem_max`, where it can be read.
    pub send_cap: Option<usize>,
}

impl SocketBuffers {
    /// The sysctl settings that would let the request through, if the caps are below it.
    pub fn advice(&self) -> Option<String> {
        let short = |cap: Option<usize>| cap.is_some_and(|cap| cap < self.requested);
        let mut settings = Vec::new();
        if short(self.receive_cap) {
            settings.push(format!("net.core.rmem_max={}", self.requested));
        }
        if short(self.send_cap) {
            settings.push(format!("net.core.wmem_max={}", self.requested));
        }
        (!settings.is_empty()).then(|| format!("sysctl -w {}", settings.join(" ")))
    }
}

/// Binds a UDP socket to `addr` and asks for `buffer_bytes` of receive and send buffer.
/// Failing to resize is not fatal (the socket works with what the kernel gives); failing to
/// bind is.
pub fn bind(addr: SocketAddr, buffer_bytes: usize) -> std::io::Result<(UdpSocket, SocketBuffers)> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(error) = socket.set_recv_buffer_size(buffer_bytes) {
        tracing::warn!(%error, buffer_bytes, "could not size the QUIC socket's receive buffer");
    }
    if let Err(error) = socket.set_send_buffer_size(buffer_bytes) {
        tracing::warn!(%error, buffer_bytes, "could not size the QUIC socket's send buffer");
    }
    socket.bind(&addr.into())?;
    let buffers = SocketBuffers {
        requested: buffer_bytes,
        receive: socket.recv_buffer_size().unwrap_or(0),
        send: socket.send_buffer_size().unwrap_or(0),
        receive_cap: read_sysctl(Path::new("/proc/sys/net/core/rmem_max")),
        send_cap: read_sysctl(Path::new("/proc/sys/net/core/wmem_max")),
    };
    Ok((socket.into(), buffers))
}

fn read_sysctl(path: &Path) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn buffers(receive_cap: Option<usize>, send_cap: Option<usize>) -> SocketBuffers {
        SocketBuffers {
            requested: 8 << 20,
            receive: 0,
            send: 0,
            receive_cap,
            send_cap,
        }
    }

    #[test]
    fn advice_names_exactly_the_caps_below_the_request() {
        assert_eq!(buffers(Some(8 << 20), Some(16 << 20)).advice(), None);
        assert_eq!(buffers(None, None).advice(), None, "unknown caps: no guess");
        assert_eq!(
            buffers(Some(212_992), Some(8 << 20)).advice().as_deref(),
            Some("sysctl -w net.core.rmem_max=8388608")
        );
        assert_eq!(
            buffers(Some(212_992), Some(212_992)).advice().as_deref(),
            Some("sysctl -w net.core.rmem_max=8388608 net.core.wmem_max=8388608")
        );
    }

    #[test]
    fn a_bound_socket_reports_what_the_kernel_granted() {
        let (socket, buffers) = bind("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
        assert_ne!(socket.local_addr().unwrap().port(), 0);
        assert_eq!(buffers.requested, 1 << 20);
        // Granted: the request if the cap allows it, else the cap (Linux reports both
        // doubled); never nothing.
        let expected = buffers.receive_cap.map_or(1 << 20, |cap| cap.min(1 << 20));
        assert!(
            buffers.receive >= expected,
            "{buffers:?}: got less than min(request, cap)"
        );
    }
}
