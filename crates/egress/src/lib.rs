//! The egress guard: where the engine may connect on a customer's behalf.
//!
//! A customer names the hosts the engine connects to (a SIP trunk now, webhook URLs next). Left
//! unchecked, that makes the engine a proxy into its own network: loopback services, private
//! ranges, the cloud's metadata endpoint. [`Policy::resolve`] resolves a host once per use and
//! refuses every address outside the public internet ([`refusal`], pure and unit-tested); the
//! caller then connects to exactly the address returned, so a name that resolves to a public
//! address for the check and to a private one for the connection (DNS rebinding) gains nothing.
//! An operator whose trunks live on a private network lifts the range check with
//! `--allow-private-networks`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long a host name may take to resolve before the connection is given up.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Which networks the engine may reach.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Lifts the range check: for trunks on the operator's own network, and for tests on loopback.
    pub allow_private_networks: bool,
}

/// Why an address is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Unspecified,
    Loopback,
    /// RFC 1918, and IPv6 unique local addresses (fc00::/7) and site-local ones.
    Private,
    LinkLocal,
    /// RFC 6598's shared address space (100.64.0.0/10), carrier-grade NAT.
    SharedAddressSpace,
    /// A cloud provider's instance metadata service.
    CloudMetadata,
    Multicast,
    Broadcast,
    /// Reserved for future use, documentation, benchmarking or protocol assignments: never a trunk.
    Reserved,
}

impl Refusal {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Unspecified => "an unspecified address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private network address",
            Self::LinkLocal => "a link-local address",
            Self::SharedAddressSpace => "a carrier-grade NAT address",
            Self::CloudMetadata => "a cloud metadata address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "a broadcast address",
            Self::Reserved => "a reserved address",
        }
    }
}

/// Why a host may not be connected to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{host} resolves to {address}, {}; only public addresses may be reached", .refusal.describe())]
    Refused { host: String, address: IpAddr, refusal: Refusal },
    #[error("{host} could not be resolved: {reason}")]
    Unresolvable { host: String, reason: String },
}

/// Why `ip` is not a public internet address, or `None` when it is.
pub fn refusal(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<Refusal> {
    let [a, b, c, d] = ip.octets();
    // The metadata endpoints first: they sit inside ranges refused anyway, but deserve their name.
    const METADATA: [[u8; 4]; 3] = [[169, 254, 169, 254], [169, 254, 170, 2], [100, 100, 100, 200]];
    Some(match (a, b, c, d) {
        _ if METADATA.contains(&ip.octets()) => Refusal::CloudMetadata,
        (0, ..) => Refusal::Unspecified,
        (127, ..) => Refusal::Loopback,
        (10, ..) | (192, 168, ..) => Refusal::Private,
        (172, 16..=31, ..) => Refusal::Private,
        (169, 254, ..) => Refusal::LinkLocal,
        (100, 64..=127, ..) => Refusal::SharedAddressSpace,
        (255, 255, 255, 255) => Refusal::Broadcast,
        (224..=239, ..) => Refusal::Multicast,
        (240..=255, ..) => Refusal::Reserved,
        // IETF protocol assignments, documentation (TEST-NET-1..3) and benchmarking.
        (192, 0, 0, _) | (192, 0, 2, _) | (198, 51, 100, _) | (203, 0, 113, _) | (198, 18..=19, ..) => {
            Refusal::Reserved
        }
        _ => return None,
    })
}

fn refusal_v6(ip: Ipv6Addr) -> Option<Refusal> {
    let segments = ip.segments();
    if ip.is_unspecified() {
        return Some(Refusal::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Refusal::Loopback);
    }
    // IPv4 addresses carried in IPv6 are judged as the IPv4 address they carry: mapped
    // (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match segments {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0, 0, hi, lo] | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => {
            return refusal_v4(embedded(hi, lo));
        }
        [0x2002, hi, lo, ..] => return refusal_v4(embedded(hi, lo)),
        _ => {}
    }
    // AWS's IPv6 metadata endpoint, inside the unique local range.
    if segments == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] {
        return Some(Refusal::CloudMetadata);
    }
    Some(match segments[0] {
        0xfc00..=0xfdff => Refusal::Private,
        0xfe80..=0xfebf => Refusal::LinkLocal,
        // Site-local, deprecated but still private.
        0xfec0..=0xfeff => Refusal::Private,
        0xff00..=0xffff => Refusal::Multicast,
        // Documentation.
        0x2001 if segments[1] == 0xdb8 => Refusal::Reserved,
        _ => return None,
    })
}

impl Policy {
    /// Checks one address against the policy.
    pub fn check(&self, host: &str, address: IpAddr) -> Result<(), Error> {
        match refusal(address) {
            Some(refusal) if !self.allow_private_networks => {
                Err(Error::Refused { host: host.to_owned(), address, refusal })
            }
            _ => Ok(()),
        }
    }

    /// Resolves `host` once and checks every address it resolves to; answers the address to
    /// connect to, which the caller must use as it is (never the name again). A name with any
    /// refused address is refused whole: which address a client picks is not ours to know.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, Error> {
        let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let addresses: Vec<SocketAddr> = match literal.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                let unresolvable = |reason: String| Error::Unresolvable { host: host.to_owned(), reason };
                tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((literal, port)))
                    .await
                    .map_err(|_| unresolvable(format!("no answer within {} s", RESOLVE_TIMEOUT.as_secs())))?
                    .map_err(|e| unresolvable(e.to_string()))?
                    .collect()
            }
        };
        for address in &addresses {
            self.check(host, address.ip())?;
        }
        // IPv4 first where a name has both: hosts without an IPv6 route are still common.
        addresses
            .iter()
            .find(|a| a.is_ipv4())
            .or(addresses.first())
            .copied()
            .ok_or_else(|| Error::Unresolvable { host: host.to_owned(), reason: "no address".to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(raw: &str) -> Option<Refusal> {
        refusal(raw.parse().unwrap())
    }

    #[test]
    fn public_addresses_pass() {
        for ip in
            ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "192.169.0.1", "2606:4700::1111", "::ffff:8.8.8.8"]
        {
            assert_eq!(why(ip), None, "{ip}");
        }
    }

    #[test]
    fn every_non_public_range_is_refused_with_its_name() {
        use Refusal::*;
        let cases = [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("::", Unspecified),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("::1", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("169.254.1.1", LinkLocal),
            ("fe80::1", LinkLocal),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("169.254.169.254", CloudMetadata),
            ("169.254.170.2", CloudMetadata),
            ("100.100.100.200", CloudMetadata),
            ("fd00:ec2::254", CloudMetadata),
            ("224.0.0.1", Multicast),
            ("ff02::1", Multicast),
            ("255.255.255.255", Broadcast),
            ("240.0.0.1", Reserved),
            ("192.0.2.1", Reserved),
            ("2001:db8::1", Reserved),
        ];
        for (ip, expected) in cases {
            assert_eq!(why(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn ipv4_carried_in_ipv6_is_judged_as_the_ipv4_address() {
        assert_eq!(why("::ffff:127.0.0.1"), Some(Refusal::Loopback));
        assert_eq!(why("::ffff:169.254.169.254"), Some(Refusal::CloudMetadata));
        assert_eq!(why("::ffff:10.1.2.3"), Some(Refusal::Private));
        assert_eq!(why("::127.0.0.1"), Some(Refusal::Loopback));
        assert_eq!(why("::192.168.0.1"), Some(Refusal::Private));
        assert_eq!(why("64:ff9b::a9fe:a9fe"), Some(Refusal::CloudMetadata));
        assert_eq!(why("2002:c0a8:0101::1"), Some(Refusal::Private));
        assert_eq!(why("2002:0808:0808::1"), None);
    }

    #[tokio::test]
    async fn resolving_refuses_refused_literals_and_names_unless_private_networks_are_allowed() {
        let public_only = Policy::default();
        for host in ["127.0.0.1", "[::1]", "169.254.169.254", "localhost"] {
            let err = public_only.resolve(host, 5060).await.unwrap_err();
            assert!(matches!(err, Error::Refused { .. }), "{host}: {err}");
        }
        let open = Policy { allow_private_networks: true };
        assert_eq!(open.resolve("127.0.0.1", 5060).await, Ok("127.0.0.1:5060".parse().unwrap()));
        assert_eq!(open.resolve("[::1]", 5061).await, Ok("[::1]:5061".parse().unwrap()));
        assert!(open.resolve("localhost", 5060).await.unwrap().ip().is_loopback());
    }
}
