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

/// Whose SIP trunk a connection is, as the contract names providers. Every one of them is a SIP
/// trunk given by its address and credentials: what needs the provider's own API (searching
/// and buying numbers, subaccounts, transfers at the carrier) is not something switchboard does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    #[default]
    Manual,
    Twilio,
    Telnyx,
    Signalwire,
    Vonage,
}

impl Vendor {
    pub const ALL: [Vendor; 5] = [Self::Manual, Self::Twilio, Self::Telnyx, Self::Signalwire, Self::Vonage];

    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|v| v.as_str() == raw).ok_or_else(|| format!("\"{raw}\" is not a valid choice."))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Twilio => "twilio",
            Self::Telnyx => "telnyx",
            Self::Signalwire => "signalwire",
            Self::Vonage => "vonage",
        }
    }
}

/// The host a `manual` connection names to mean the simulated carrier.
pub const SIM_HOST: &str = "sim";

/// How long a passed connection test may back the create (or reconfiguration) of a connection:
/// long enough to fill in a name, short enough that a trunk tested yesterday is tested again.
pub const EVIDENCE_VALID_MS: i64 = 60 * 60 * 1000;

/// A connection test as the org's log records it: what was tested (never the password: its
/// part is the keyed fingerprint of the whole configuration), how it went, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// A UUID, as the contract shows evidence ids.
    pub id: String,
    pub vendor: Vendor,
    /// `None` for the simulated carrier.
    pub trunk: Option<TrunkSummary>,
    /// A keyed MAC of the configuration tested, password included: a create must present the
    /// same configuration.
    #[serde(with = "serde_bytes")]
    pub fingerprint: Vec<u8>,
    /// The connection it re-tests, if it names one.
    pub connection_id: Option<crate::ids::VoipConnectionId>,
    /// Why the probe failed, if it did.
    pub error: Option<String>,
    pub at: crate::Timestamp,
    /// A connection was created or reconfigured on it: evidence backs one change only.
    pub used: bool,
}

/// A trunk's address and user, without its password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrunkSummary {
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    pub username: String,
}

impl<P> Provider<P> {
    pub fn summary(&self) -> Option<TrunkSummary> {
        match self {
            Self::Sim => None,
            Self::Sip(t) => Some(TrunkSummary {
                host: t.host.clone(),
                port: t.port,
                transport: t.transport,
                username: t.username.clone(),
            }),
        }
    }
}

/// The evidence a create or reconfiguration presents, with the fingerprint of what it asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceClaim {
    pub id: String,
    pub fingerprint: Vec<u8>,
}

/// Why evidence does not back a change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceRefusal {
    #[error("No connection test of this organization has this id.")]
    Unknown,
    #[error("The connection test failed; fix the configuration and test again.")]
    Failed,
    #[error("The connection test is more than an hour old; test again.")]
    Expired,
    #[error("The connection test was used already; test again.")]
    Used,
    #[error("The connection test was of another provider or configuration; test this one.")]
    Mismatch,
}

impl Evidence {
    /// Whether this evidence backs a change to `vendor` with the configuration `claim`
    /// fingerprints, at `now`.
    pub fn backs(&self, vendor: Vendor, claim: &EvidenceClaim, now: crate::Timestamp) -> Result<(), EvidenceRefusal> {
        if self.error.is_some() {
            return Err(EvidenceRefusal::Failed);
        }
        if self.used {
            return Err(EvidenceRefusal::Used);
        }
        if now.0 - self.at.0 > EVIDENCE_VALID_MS {
            return Err(EvidenceRefusal::Expired);
        }
        if self.vendor != vendor || self.fingerprint != claim.fingerprint {
            return Err(EvidenceRefusal::Mismatch);
        }
        Ok(())
    }
}

/// An evidence id as a request names it: a UUID, in its hyphenated form (any case).
pub fn parse_evidence_id(raw: &str) -> Result<String, String> {
    let groups: Vec<&str> = raw.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups.iter().zip(lengths).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok { Ok(raw.to_ascii_lowercase()) } else { Err("Must be a valid UUID.".to_owned()) }
}
