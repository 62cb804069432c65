//! Secrets the engine must keep but never show: SIP trunk passwords, and later webhook signing
//! secrets. In memory a secret is a [`Secret`], which prints as a placeholder and cannot be
//! serialized, so it can reach neither an event nor a log line by accident. At rest it is a
//! [`Sealed`] value: an AEAD ciphertext under a data key of its own, which is kept outside the
//! log (see the orchestrator's vault), so deleting that key makes the secret unrecoverable while
//! the event that carries the ciphertext stays in its hash chain untouched. Sealing needs keys
//! and randomness, so it happens in the actor, never here.

use serde::{Deserialize, Serialize};

/// A secret in the clear. Only the carrier, at the moment it speaks to a trunk, and the edge that
/// received it ever see its value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A secret as the log keeps it: sealed under the data key `key_id`, with the nonce it was
/// sealed with. Opening it needs that data key, which is gone once the secret's owner is.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredSecret")]
pub struct Sealed {
    pub key_id: String,
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl Sealed {
    /// A secret that can no longer be opened: what a password recorded in the clear, before
    /// secrets were sealed, reads as. Its key id names no data key.
    pub fn unrecoverable() -> Self {
        Self { key_id: String::new(), nonce: Vec::new(), ciphertext: Vec::new() }
    }

    pub fn is_recoverable(&self) -> bool {
        !self.key_id.is_empty()
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// What the log may hold where a secret is: a sealed value, or (in events recorded before
/// secrets were sealed) the plain text. The plain text is upcast to [`Sealed::unrecoverable`]:
/// it is never read back into the engine, so it can never re-enter a projection, a reply or a
/// dial; the trunk must be given its password again (a new connection).
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredSecret {
    Sealed {
        key_id: String,
        #[serde(with = "serde_bytes")]
        nonce: Vec<u8>,
        #[serde(with = "serde_bytes")]
        ciphertext: Vec<u8>,
    },
    Plaintext(#[allow(dead_code)] String),
}

impl From<StoredSecret> for Sealed {
    fn from(stored: StoredSecret) -> Self {
        match stored {
            StoredSecret::Sealed { key_id, nonce, ciphertext } => Self { key_id, nonce, ciphertext },
            StoredSecret::Plaintext(_) => Self::unrecoverable(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Trunk<P> {
        username: String,
        password: P,
    }

    #[test]
    fn a_sealed_secret_round_trips_and_a_plaintext_one_from_before_reads_as_unrecoverable() {
        let sealed = Sealed { key_id: "k1".into(), nonce: vec![1; 12], ciphertext: vec![9, 8, 7] };
        let stored = rmp_serde::to_vec_named(&Trunk { username: "alice".into(), password: sealed.clone() }).unwrap();
        let back: Trunk<Sealed> = rmp_serde::from_slice(&stored).unwrap();
        assert_eq!(back.password, sealed);
        assert!(back.password.is_recoverable());

        // An event recorded before secrets were sealed held the password itself.
        let old = rmp_serde::to_vec_named(&Trunk { username: "alice".into(), password: "hunter2" }).unwrap();
        let upcast: Trunk<Sealed> = rmp_serde::from_slice(&old).unwrap();
        assert_eq!(upcast.password, Sealed::unrecoverable());
        assert!(!format!("{upcast:?}").contains("hunter2"));
    }

    #[test]
    fn debug_never_prints_a_secret() {
        let secret = Secret::new("hunter2".into());
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(secret.expose(), "hunter2");
        let sealed = Sealed { key_id: "k1".into(), nonce: vec![1; 12], ciphertext: b"hunter2".to_vec() };
        assert!(!format!("{sealed:?}").contains("104"), "{sealed:?}");
    }
}
