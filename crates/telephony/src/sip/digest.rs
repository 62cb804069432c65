//! Digest authentication (RFC 3261 §22, RFC 2617): how a trunk that answers an INVITE with 401
//! or 407 learns the connection's credentials without the password crossing the wire.

use md5::{Digest, Md5};

/// What the trunk asked for in `WWW-Authenticate` / `Proxy-Authenticate`.
#[derive(Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// Whether the trunk offered `qop=auth` (then the answer carries a client nonce).
    pub qop_auth: bool,
}

impl Challenge {
    pub fn parse(header: &str) -> Option<Self> {
        let rest = header.trim().strip_prefix("Digest")?.trim();
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut qop_auth = false;
        for (name, value) in fields(rest) {
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "opaque" => opaque = Some(value),
                "qop" => qop_auth = value.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth")),
                "algorithm" if !value.eq_ignore_ascii_case("md5") => return None,
                _ => {}
            }
        }
        Some(Self { realm: realm?, nonce: nonce?, opaque, qop_auth })
    }

    /// The `Authorization` value that answers this challenge for `method` on `uri`.
    pub fn answer(&self, username: &str, password: &str, method: &str, uri: &str, cnonce: &str) -> String {
        let ha1 = md5_hex(&format!("{username}:{}:{password}", self.realm));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let mut value = format!(
            "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", algorithm=MD5",
            self.realm, self.nonce
        );
        let response = if self.qop_auth {
            // One request per nonce, so the nonce count is always 1.
            value.push_str(&format!(", qop=auth, nc=00000001, cnonce=\"{cnonce}\""));
            md5_hex(&format!("{ha1}:{}:00000001:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            md5_hex(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        value.push_str(&format!(", response=\"{response}\""));
        if let Some(opaque) = &self.opaque {
            value.push_str(&format!(", opaque=\"{opaque}\""));
        }
        value
    }
}

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `name=value` pairs separated by commas, values quoted or not (commas inside quotes stay).
fn fields(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once('=') {
        let name = name.trim().trim_start_matches(',').trim().to_owned();
        let after = after.trim_start();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((value, remaining)) => (value.to_owned(), remaining),
                None => (quoted.to_owned(), ""),
            },
            None => match after.split_once(',') {
                Some((value, remaining)) => (value.trim().to_owned(), remaining),
                None => (after.trim().to_owned(), ""),
            },
        };
        out.push((name, value));
        rest = remaining.trim_start().trim_start_matches(',');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_2617_example_answers_as_the_rfc_says() {
        // RFC 2617 §3.5, with its qop=auth exchange.
        let challenge = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert!(challenge.qop_auth);
        let answer = challenge.answer("Mufasa", "Circle Of Life", "GET", "/dir/index.html", "0a4f113b");
        assert!(answer.contains("response=\"6629fae49393a05397450978507c4ef1\""), "{answer}");
        assert!(answer.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
        assert_eq!(Challenge::parse("Basic realm=\"x\""), None);
        assert_eq!(Challenge::parse("Digest realm=\"x\", nonce=\"n\", algorithm=SHA-256"), None);
    }
}
