//! SIP messages (RFC 3261 §7) as this user agent writes and reads them: a start line, headers,
//! and a body sized by `Content-Length`. Only what a UAC placing calls needs is read.

use std::fmt::Write;

/// A request to send.
pub struct Request {
    pub method: &'static str,
    pub uri: String,
    /// In order; `Content-Length` is added when the request is written.
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Request {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} SIP/2.0\r\n", self.method, self.uri);
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        let _ = write!(out, "Content-Length: {}\r\n\r\n{}", self.body.len(), self.body);
        out.into_bytes()
    }
}

/// A message received: a response (`status`) or a request (`method`).
#[derive(Debug)]
pub struct Message {
    pub start: Start,
    headers: Vec<(String, String)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Start {
    Response { status: u16 },
    Request { method: String, uri: String },
}

/// Compact header forms (RFC 3261 §7.3.3) and their full names.
const COMPACT: &[(&str, &str)] =
    &[("i", "call-id"), ("f", "from"), ("t", "to"), ("v", "via"), ("m", "contact"), ("l", "content-length")];

impl Message {
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let head = text.split("\r\n\r\n").next()?;
        let mut lines = head.split("\r\n");
        let first = lines.next()?;
        let start = if let Some(rest) = first.strip_prefix("SIP/2.0 ") {
            Start::Response { status: rest.get(..3)?.parse().ok()? }
        } else {
            let mut parts = first.split(' ');
            let (method, uri, version) = (parts.next()?, parts.next()?, parts.next()?);
            if version != "SIP/2.0" {
                return None;
            }
            Start::Request { method: method.to_owned(), uri: uri.to_owned() }
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // A folded line continues the header before it.
                let (_, value) = headers.last_mut()?;
                value.push(' ');
                value.push_str(line.trim());
                continue;
            }
            let (name, value) = line.split_once(':')?;
            let name = name.trim().to_ascii_lowercase();
            let name = COMPACT.iter().find(|(short, _)| *short == name).map_or(name, |(_, long)| (*long).to_owned());
            headers.push((name, value.trim().to_owned()));
        }
        Some(Self { start, headers })
    }

    pub fn status(&self) -> Option<u16> {
        match self.start {
            Start::Response { status } => Some(status),
            Start::Request { .. } => None,
        }
    }

    pub fn method(&self) -> Option<&str> {
        match &self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    /// The first value of a header (names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order, each comma-separated value on its own.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The CSeq's number and method.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let (number, method) = self.header("cseq")?.split_once(' ')?;
        Some((number.trim().parse().ok()?, method.trim()))
    }

    /// The `tag` parameter of the To header: the far end's side of the dialog.
    pub fn to_tag(&self) -> Option<&str> {
        param(self.header("to")?, "tag")
    }

    /// The URI inside the Contact header: where requests within the dialog go.
    pub fn contact_uri(&self) -> Option<&str> {
        angle_uri(self.header("contact")?)
    }

    /// Answers this request (a BYE, say) with `status`, echoing what RFC 3261 §8.2.6 says a
    /// response copies from its request.
    pub fn response(&self, status: u16, reason: &str) -> Vec<u8> {
        let mut out = format!("SIP/2.0 {status} {reason}\r\n");
        for via in self.header_all("via") {
            let _ = write!(out, "Via: {via}\r\n");
        }
        for name in ["From", "To", "Call-ID", "CSeq"] {
            if let Some(value) = self.header(name) {
                let _ = write!(out, "{name}: {value}\r\n");
            }
        }
        out.push_str("Content-Length: 0\r\n\r\n");
        out.into_bytes()
    }
}

/// A `;name=value` parameter of a header value.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.split(';').skip(1).find_map(|p| {
        let (n, v) = p.split_once('=')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The URI of a name-addr (`"Bob" <sip:bob@host>;tag=1`) or a bare addr-spec.
pub fn angle_uri(value: &str) -> Option<&str> {
    match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => Some(&value[open + 1..close]),
        _ => value.split(';').next().map(str::trim),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_and_requests_parse_with_compact_and_folded_headers() {
        let raw = "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\nTo: <sip:+14155550123@t>;tag=abc\r\n\
                   i: x@y\r\nCSeq: 2 INVITE\r\nContact: \"Far\" <sip:far@10.0.0.2:5070;transport=udp>\r\n\
                   X-Long: one\r\n two\r\nl: 0\r\n\r\n";
        let m = Message::parse(raw.as_bytes()).unwrap();
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.header("call-id"), Some("x@y"));
        assert_eq!(m.to_tag(), Some("abc"));
        assert_eq!(m.cseq(), Some((2, "INVITE")));
        assert_eq!(m.contact_uri(), Some("sip:far@10.0.0.2:5070;transport=udp"));
        assert_eq!(m.header("x-long"), Some("one two"));

        let bye =
            Message::parse(b"BYE sip:sb@127.0.0.1:4000 SIP/2.0\r\nVia: a\r\nVia: b\r\nCSeq: 7 BYE\r\n\r\n").unwrap();
        assert_eq!(bye.method(), Some("BYE"));
        let ok = String::from_utf8(bye.response(200, "OK")).unwrap();
        assert!(ok.starts_with("SIP/2.0 200 OK\r\nVia: a\r\nVia: b\r\nCSeq: 7 BYE\r\n"), "{ok}");
        assert!(Message::parse(b"HTTP/1.1 200 OK\r\n\r\n").is_none());
    }
}
