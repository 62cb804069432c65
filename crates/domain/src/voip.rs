//! VoIP connections: the org's own carrier accounts that back its phone numbers.

use serde::{Deserialize, Serialize};

use crate::fields::{non_blank, refuse_control};
use crate::secret::Secret;

pub const MAX_HOST_CHARS: usize = 253;
pub const MAX_CREDENTIAL_CHARS: usize = 256;
pub const DEFAULT_SIP_PORT: u16 = 5060;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "udp" => Ok(Self::Udp),
            "tcp" => Ok(Self::Tcp),
            "tls" => Ok(Self::Tls),
            _ => Err(format!("\"{raw}\" is not a valid choice.")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }
}

/// A SIP trunk's address and credentials. Its password is [`crate::secret::Sealed`] wherever it
/// is kept (events, projections, memory between uses: `SipTrunk<Sealed>`), and a [`Secret`] only
/// on its way in and when the carrier speaks to the trunk (`SipTrunk`, which cannot be
/// serialized).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipTrunk<P = Secret> {
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    pub username: String,
    /// Kept to authenticate to the trunk; never returned by the API.
    pub password: P,
}

impl SipTrunk {
    /// A host name or IP literal. Only its syntax is checked here; where it may lead is the
    /// egress guard's to judge, each time the engine connects (it resolves then).
    pub fn parse_host(raw: &str) -> Result<String, String> {
        refuse_control(raw)?;
        let host = non_blank(raw, MAX_HOST_CHARS)?;
        let ok = host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
        if ok { Ok(host) } else { Err("Enter a valid host name or IP address.".to_owned()) }
    }

    pub fn parse_port(raw: i64) -> Result<u16, String> {
        u16::try_from(raw)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| "Ensure this value is between 1 and 65535.".to_owned())
    }

    /// A username or password. Both go into SIP messages (the username verbatim into `From:`
    /// and `Authorization:`), where a CR or LF would let the value write headers of its own.
    pub fn parse_credential(raw: &str) -> Result<String, String> {
        refuse_control(raw)?;
        non_blank(raw, MAX_CREDENTIAL_CHARS)
    }
}

/// Who carries the calls of a connection; `P` is how its SIP password is held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Provider<P = Secret> {
    /// The simulated carrier (see the `telephony` crate).
    Sim,
    Sip(SipTrunk<P>),
}

impl<P> Provider<P> {
    /// The same provider with its password turned into another form (sealed, or opened).
    pub fn try_map_password<Q, E>(self, f: impl FnOnce(P) -> Result<Q, E>) -> Result<Provider<Q>, E> {
        Ok(match self {
            Self::Sim => Provider::Sim,
            Self::Sip(SipTrunk { host, port, transport, username, password }) => {
                Provider::Sip(SipTrunk { host, port, transport, username, password: f(password)? })
            }
        })
    }

    /// The password, for a SIP trunk.
    pub fn password(&self) -> Option<&P> {
        match self {
            Self::Sim => None,
            Self::Sip(trunk) => Some(&trunk.password),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sim => "sim",
            Self::Sip(_) => "sip",
        }
    }
}

pub fn parse_connection_name(raw: &str) -> Result<String, String> {
    crate::fields::name(raw, 100)
}
