//! A SIP `OPTIONS` probe (RFC 3261 §11): any SIP response means a SIP server is there.

use std::net::SocketAddr;
use std::time::Duration;

use domain::voip::{SipTrunk, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::message::{Message, Request};
use super::token;

/// Probes the trunk at the one address its host resolved to through the egress guard.
pub async fn probe(trunk: &SipTrunk, timeout: Duration, egress: egress::Policy) -> Result<(), String> {
    let target = format!("{}:{}", trunk.host, trunk.port);
    let exchange = async {
        if trunk.transport == Transport::Tls {
            return Err("TLS trunks cannot be verified yet; use udp or tcp.".to_owned());
        }
        let address = egress.resolve(&trunk.host, trunk.port).await.map_err(|e| format!("{e}."))?;
        match trunk.transport {
            Transport::Udp => probe_udp(trunk, address, &target).await,
            Transport::Tcp => probe_tcp(trunk, address, &target).await,
            Transport::Tls => unreachable!("tls trunks are refused above"),
        }
    };
    let status = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("No SIP answer from {target} within {} s.", timeout.as_secs()))??;
    // 401/407 mean the server is there and wants the credentials we would register with.
    if status < 500 || status == 501 {
        Ok(())
    } else {
        Err(format!("{target} answered OPTIONS with SIP status {status}."))
    }
}

fn options_request(trunk: &SipTrunk, local: &str, transport: &str) -> Vec<u8> {
    let branch = format!("z9hG4bK{}", token(16));
    Request {
        method: "OPTIONS",
        uri: format!("sip:{}", trunk.host),
        headers: vec![
            ("Via", format!("SIP/2.0/{transport} {local};branch={branch}")),
            ("Max-Forwards", "70".into()),
            ("From", format!("<sip:{}@{}>;tag={}", trunk.username, trunk.host, token(10))),
            ("To", format!("<sip:{}>", trunk.host)),
            ("Call-ID", format!("{}@switchboard", token(20))),
            ("CSeq", "1 OPTIONS".into()),
            ("User-Agent", "switchboard".into()),
        ],
        body: String::new(),
    }
    .to_bytes()
}

async fn probe_udp(trunk: &SipTrunk, address: SocketAddr, target: &str) -> Result<u16, String> {
    let socket = super::transport::connected_udp(address).await.map_err(|e| format!("Cannot reach {target}: {e}"))?;
    let local = socket.local_addr().map_err(|e| e.to_string())?.to_string();
    socket.send(&options_request(trunk, &local, "UDP")).await.map_err(|e| format!("Cannot reach {target}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    let n = socket.recv(&mut buf).await.map_err(|e| format!("No SIP answer from {target}: {e}"))?;
    status_of(&buf[..n], target)
}

async fn probe_tcp(trunk: &SipTrunk, address: SocketAddr, target: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect(address).await.map_err(|e| format!("Cannot reach {target}: {e}"))?;
    let local = stream.local_addr().map_err(|e| e.to_string())?.to_string();
    stream.write_all(&options_request(trunk, &local, "TCP")).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.map_err(|e| format!("No SIP answer from {target}: {e}"))?;
    status_of(&buf[..n], target)
}

fn status_of(response: &[u8], target: &str) -> Result<u16, String> {
    Message::parse(response).and_then(|m| m.status()).ok_or_else(|| format!("{target} did not answer in SIP."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UdpSocket;

    /// These tests' trunks are on loopback.
    const LOOPBACK: egress::Policy = egress::Policy { allow_private_networks: true };

    fn trunk(port: u16, transport: Transport) -> SipTrunk {
        SipTrunk {
            host: "127.0.0.1".into(),
            port,
            transport,
            username: "alice".into(),
            password: domain::secret::Secret::new("secret".into()),
        }
    }

    #[tokio::test]
    async fn a_sip_server_that_answers_options_verifies() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"OPTIONS sip:127.0.0.1 SIP/2.0"));
            server.send_to(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", from).await.unwrap();
        });
        assert_eq!(probe(&trunk(port, Transport::Udp), Duration::from_secs(2), LOOPBACK).await, Ok(()));
    }

    #[tokio::test]
    async fn silence_and_non_sip_answers_fail_with_a_reason() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let err = probe(&trunk(port, Transport::Udp), Duration::from_millis(200), LOOPBACK).await.unwrap_err();
        assert!(err.contains("No SIP answer"), "{err}");

        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = http.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = http.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await.unwrap();
        });
        let err = probe(&trunk(port, Transport::Tcp), Duration::from_secs(2), LOOPBACK).await.unwrap_err();
        assert!(err.contains("did not answer in SIP"), "{err}");
    }

    #[tokio::test]
    async fn a_trunk_on_loopback_is_not_probed_unless_private_networks_are_allowed() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        let err =
            probe(&trunk(port, Transport::Udp), Duration::from_secs(2), egress::Policy::default()).await.unwrap_err();
        assert!(err.contains("127.0.0.1, a loopback address"), "{err}");
        let mut buf = [0u8; 64];
        assert!(server.try_recv_from(&mut buf).is_err(), "nothing reached the listener");
    }
}
