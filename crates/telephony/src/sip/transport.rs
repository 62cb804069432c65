//! How SIP messages travel to a trunk and back (RFC 3261 §18): a connection of its own per
//! call or probe (a connected UDP socket, or a TCP stream), so what arrives on it is the
//! trunk's; over TCP, messages are framed by their head's end and `Content-Length`, and
//! nothing is retransmitted (the stream is reliable). What is said over it is the caller's.

use std::net::SocketAddr;
use std::sync::Mutex;

use domain::voip::{SipTrunk, Transport};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use super::carrier_error;
use super::message::Message;
use crate::DialError;

/// Large enough for any SIP message over UDP (RFC 3261 §18.1.1 keeps them under the MTU), and
/// the most a message over TCP may hold before the stream is called broken.
const MAX_MESSAGE_BYTES: usize = 65_535;

/// A UDP socket of its own to the trunk at `address` (the one the egress guard let through),
/// bound to any local address of the same family, so what arrives on it is the trunk's.
pub(super) async fn connected_udp(address: SocketAddr) -> std::io::Result<UdpSocket> {
    let any: SocketAddr = if address.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(any).await?;
    socket.connect(address).await?;
    Ok(socket)
}

/// A connection of its own to the trunk, and the address the trunk sees it at.
pub(super) struct Connection {
    socket: Socket,
    pub(super) local: SocketAddr,
}

enum Socket {
    Udp(UdpSocket),
    /// A stream, and what has arrived on it beyond the last whole message.
    Tcp(TcpStream, Mutex<Vec<u8>>),
}

impl Connection {
    /// Resolves the trunk's host once, through the egress guard, and connects to exactly the
    /// address it let through.
    pub(super) async fn open(trunk: &SipTrunk, egress: egress::Policy) -> Result<Self, DialError> {
        let target = format!("{}:{}", trunk.host, trunk.port);
        let unreachable = |e: std::io::Error| carrier_error(format!("Cannot reach the SIP trunk {target}: {e}"), None);
        if trunk.transport == Transport::Tls {
            let detail = "Calls over tls SIP trunks are not supported yet; use udp or tcp.".to_owned();
            return Err(carrier_error(detail, None));
        }
        let address = egress
            .resolve(&trunk.host, trunk.port)
            .await
            .map_err(|e| carrier_error(format!("The SIP trunk cannot be reached: {e}."), None))?;
        let socket = match trunk.transport {
            Transport::Udp => Socket::Udp(connected_udp(address).await.map_err(unreachable)?),
            Transport::Tcp => Socket::Tcp(TcpStream::connect(address).await.map_err(unreachable)?, Mutex::default()),
            Transport::Tls => unreachable!("tls trunks are refused above"),
        };
        let local = match &socket {
            Socket::Udp(s) => s.local_addr(),
            Socket::Tcp(s, _) => s.local_addr(),
        }
        .map_err(unreachable)?;
        Ok(Self { socket, local })
    }

    /// Whether the transport delivers by itself, so that nothing is retransmitted.
    pub(super) fn reliable(&self) -> bool {
        matches!(self.socket, Socket::Tcp(..))
    }

    pub(super) fn transport(&self) -> &'static str {
        if self.reliable() { "TCP" } else { "UDP" }
    }

    pub(super) async fn send(&self, bytes: &[u8]) {
        let sent = match &self.socket {
            Socket::Udp(socket) => socket.send(bytes).await.map(drop),
            Socket::Tcp(stream, _) => write_all(stream, bytes).await,
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "sip send failed");
        }
    }

    /// The next message from the trunk, or `None` at `deadline`. Unreadable datagrams are
    /// skipped; an unreachable trunk (ICMP), or a stream that closed or broke, is an error.
    pub(super) async fn receive(&self, deadline: Instant) -> Result<Option<Message>, std::io::Error> {
        let mut buf = vec![0u8; MAX_MESSAGE_BYTES];
        loop {
            let received = match &self.socket {
                Socket::Udp(socket) => tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await,
                Socket::Tcp(stream, pending) => {
                    if let Some(message) = take_message(&mut pending.lock().expect("sip stream buffer"))? {
                        return Ok(Some(message));
                    }
                    tokio::time::timeout_at(deadline, read_some(stream, &mut buf)).await
                }
            };
            let n = match received {
                Err(_) => return Ok(None),
                Ok(n) => n?,
            };
            match &self.socket {
                Socket::Udp(_) => {
                    if let Some(message) = Message::parse(&buf[..n]) {
                        return Ok(Some(message));
                    }
                }
                Socket::Tcp(_, pending) => pending.lock().expect("sip stream buffer").extend_from_slice(&buf[..n]),
            }
        }
    }
}

/// Reads what the stream has; a closed stream is an error (the trunk hung up the connection).
async fn read_some(stream: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Takes the first whole message off a stream's buffer (RFC 3261 §18.3: its head ends with an
/// empty line, and `Content-Length` says how much body follows).
fn take_message(pending: &mut Vec<u8>) -> std::io::Result<Option<Message>> {
    // Keep-alives (empty lines) between messages are skipped.
    let skip = pending.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
    pending.drain(..skip);
    let Some(head_end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if pending.len() > MAX_MESSAGE_BYTES {
            Err(std::io::Error::other("a SIP message over TCP without an end to its head"))
        } else {
            Ok(None)
        };
    };
    let head = Message::parse(&pending[..head_end + 4])
        .ok_or_else(|| std::io::Error::other("an unreadable SIP message over TCP"))?;
    let body: usize = head.header("content-length").and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let total = head_end + 4 + body;
    if body > MAX_MESSAGE_BYTES {
        return Err(std::io::Error::other("a SIP message over TCP larger than allowed"));
    }
    if pending.len() < total {
        return Ok(None);
    }
    pending.drain(..total);
    Ok(Some(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_yields_whole_messages_whatever_the_reads_cut() {
        let two =
            b"\r\nSIP/2.0 100 Trying\r\nContent-Length: 0\r\n\r\nSIP/2.0 200 OK\r\nContent-Length: 4\r\n\r\nv=0\n";
        let mut pending = Vec::new();
        let mut seen = Vec::new();
        for chunk in two.chunks(7) {
            pending.extend_from_slice(chunk);
            while let Some(m) = take_message(&mut pending).unwrap() {
                seen.push(m.status().unwrap());
            }
        }
        assert_eq!(seen, vec![100, 200]);
        assert!(pending.is_empty());
    }
}
