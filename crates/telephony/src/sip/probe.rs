//! A SIP `OPTIONS` probe (RFC 3261 §11): any SIP response means a SIP server is there.

use std::time::Duration;

use domain::voip::{SipTrunk, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

pub async fn probe(trunk: &SipTrunk, timeout: Duration) -> Result<(), String> {
    let target = format!("{}:{}", trunk.host, trunk.port);
    let exchange = async {
        match trunk.transport {
            Transport::Udp => probe_udp(trunk, &target).await,
            Transport::Tcp => probe_tcp(trunk, &target).await,
            Transport::Tls => Err("TLS trunks cannot be verified yet; use udp or tcp.".to_owned()),
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

fn options_request(trunk: &SipTrunk, local: &str, transport: &str) -> String {
    let branch = format!("z9hG4bK{:x}", std::process::id() as u64 ^ now_nanos());
    format!(
        "OPTIONS sip:{host} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{host}>;tag=sb{tag:x}\r\n\
         To: <sip:{host}>\r\n\
         Call-ID: {branch}@switchboard\r\n\
         CSeq: 1 OPTIONS\r\n\
         User-Agent: switchboard\r\n\
         Content-Length: 0\r\n\r\n",
        host = trunk.host,
        user = trunk.username,
        tag = now_nanos() & 0xffff_ffff,
    )
}

async fn probe_udp(trunk: &SipTrunk, target: &str) -> Result<u16, String> {
    let socket = UdpSocket::bind("0.0.0.0:0").await.map_err(|e| e.to_string())?;
    socket.connect(target).await.map_err(|e| format!("Cannot reach {target}: {e}"))?;
    let local = socket.local_addr().map_err(|e| e.to_string())?.to_string();
    socket
        .send(options_request(trunk, &local, "UDP").as_bytes())
        .await
        .map_err(|e| format!("Cannot reach {target}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    let n = socket.recv(&mut buf).await.map_err(|e| format!("No SIP answer from {target}: {e}"))?;
    status_of(&buf[..n], target)
}

async fn probe_tcp(trunk: &SipTrunk, target: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect(target).await.map_err(|e| format!("Cannot reach {target}: {e}"))?;
    let local = stream.local_addr().map_err(|e| e.to_string())?.to_string();
    stream.write_all(options_request(trunk, &local, "TCP").as_bytes()).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.map_err(|e| format!("No SIP answer from {target}: {e}"))?;
    status_of(&buf[..n], target)
}

fn status_of(response: &[u8], target: &str) -> Result<u16, String> {
    let line = response.split(|b| *b == b'\r' || *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    line.strip_prefix("SIP/2.0 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{target} did not answer in SIP."))
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(port: u16, transport: Transport) -> SipTrunk {
        SipTrunk { host: "127.0.0.1".into(), port, transport, username: "alice".into(), password: "secret".into() }
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
        assert_eq!(probe(&trunk(port, Transport::Udp), Duration::from_secs(2)).await, Ok(()));
    }

    #[tokio::test]
    async fn silence_and_non_sip_answers_fail_with_a_reason() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let err = probe(&trunk(port, Transport::Udp), Duration::from_millis(200)).await.unwrap_err();
        assert!(err.contains("No SIP answer"), "{err}");

        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = http.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = http.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await.unwrap();
        });
        let err = probe(&trunk(port, Transport::Tcp), Duration::from_secs(2)).await.unwrap_err();
        assert!(err.contains("did not answer in SIP"), "{err}");
    }
}
