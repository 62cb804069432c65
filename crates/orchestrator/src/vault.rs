//! The vault: seals and opens the secrets an org gives the engine (SIP trunk passwords), and
//! keys the fingerprints of idempotent requests.
//!
//! Envelope encryption. Each secret is sealed with ChaCha20-Poly1305 under a data key of its
//! own; the data key is kept in the store's key-value tree beside the log (not in any stream,
//! so not in any hash chain), wrapped (sealed) under the master key, which lives only in the
//! secrets key file, never in the data directory's log. Deleting a secret's data key
//! (crypto-shredding) makes every copy of its ciphertext, in events that can never be erased,
//! unrecoverable. Each seal binds its key id as associated data, so a ciphertext cannot be
//! opened under another secret's key.

use std::sync::Arc;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use domain::secret::{Sealed, Secret};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
/// What the idempotency fingerprint key is derived for; a new purpose gets a new label.
const FINGERPRINT_LABEL: &[u8] = b"switchboard/idempotency-fingerprint/v1";
const CONFIG_FINGERPRINT_LABEL: &[u8] = b"switchboard/connection-config-fingerprint/v1";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the secrets key must be {} hexadecimal digits", KEY_BYTES * 2)]
    BadMasterKey,
    /// The secret's data key was deleted (its owner is gone), or it never had one.
    #[error("the secret is no longer recoverable")]
    Shredded,
    /// The ciphertext or its wrapped data key does not open under the keys it names: the data
    /// directory was written under another secrets key, or was changed.
    #[error("the secret does not open under this secrets key")]
    Corrupt,
    #[error("key store: {0}")]
    Store(#[from] eventlog::Error),
}

/// The key that wraps every data key. Read from the secrets key file; never stored in the log.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_BYTES]);

impl MasterKey {
    /// Parses a key file's contents: 64 hexadecimal digits, surrounding whitespace ignored.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        if text.len() != KEY_BYTES * 2 {
            return Err(Error::BadMasterKey);
        }
        let mut key = [0u8; KEY_BYTES];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2).ok_or(Error::BadMasterKey)?, 16)
                .map_err(|_| Error::BadMasterKey)?;
        }
        Ok(Self(key))
    }

    /// A new random key, as a key file holds it.
    pub fn generate_hex() -> String {
        ChaCha20Poly1305::generate_key(&mut OsRng).iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

#[derive(Clone)]
pub struct Vault {
    master: Arc<ChaCha20Poly1305>,
    /// HMAC key for idempotency fingerprints, derived from the master key.
    fingerprint_key: Arc<[u8; KEY_BYTES]>,
    /// HMAC key for the fingerprints of connection configurations, derived from the master key.
    config_key: Arc<[u8; KEY_BYTES]>,
    keys: eventlog::KeyStore,
}

impl Vault {
    pub fn new(master: &MasterKey, keys: eventlog::KeyStore) -> Self {
        let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(&master.0).expect("HMAC takes any key length");
        derive.update(FINGERPRINT_LABEL);
        let fingerprint_key: [u8; KEY_BYTES] = derive.finalize().into_bytes().into();
        let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(&master.0).expect("HMAC takes any key length");
        derive.update(CONFIG_FINGERPRINT_LABEL);
        let config_key: [u8; KEY_BYTES] = derive.finalize().into_bytes().into();
        Self {
            config_key: Arc::new(config_key),
            master: Arc::new(ChaCha20Poly1305::new(Key::from_slice(&master.0))),
            fingerprint_key: Arc::new(fingerprint_key),
            keys,
        }
    }

    /// Seals a secret under a new data key, which is written to the key store (durable with the
    /// next flush, so with the event that records the sealed value).
    pub fn seal(&self, secret: &Secret) -> Result<Sealed, Error> {
        let data_key = ChaCha20Poly1305::generate_key(&mut OsRng);
        let key_id = hex(&ChaCha20Poly1305::generate_nonce(&mut OsRng)[..]);
        let wrap_nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let wrapped = self
            .master
            .encrypt(&wrap_nonce, Payload { msg: data_key.as_slice(), aad: key_id.as_bytes() })
            .map_err(|_| Error::Corrupt)?;
        self.keys.insert(key_id.as_bytes(), &[wrap_nonce.as_slice(), &wrapped].concat())?;
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = ChaCha20Poly1305::new(&data_key)
            .encrypt(&nonce, Payload { msg: secret.expose().as_bytes(), aad: key_id.as_bytes() })
            .map_err(|_| Error::Corrupt)?;
        Ok(Sealed { key_id, nonce: nonce.to_vec(), ciphertext })
    }

    /// Opens a sealed secret, if its data key still exists.
    pub fn open(&self, sealed: &Sealed) -> Result<Secret, Error> {
        if !sealed.is_recoverable() || sealed.nonce.len() != NONCE_BYTES {
            return Err(Error::Shredded);
        }
        let wrapped = self.keys.get(sealed.key_id.as_bytes())?.ok_or(Error::Shredded)?;
        if wrapped.len() < NONCE_BYTES {
            return Err(Error::Corrupt);
        }
        let (wrap_nonce, wrapped) = wrapped.split_at(NONCE_BYTES);
        let data_key = self
            .master
            .decrypt(Nonce::from_slice(wrap_nonce), Payload { msg: wrapped, aad: sealed.key_id.as_bytes() })
            .map_err(|_| Error::Corrupt)?;
        if data_key.len() != KEY_BYTES {
            return Err(Error::Corrupt);
        }
        let plain = ChaCha20Poly1305::new(Key::from_slice(&data_key))
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload { msg: &sealed.ciphertext, aad: sealed.key_id.as_bytes() },
            )
            .map_err(|_| Error::Corrupt)?;
        String::from_utf8(plain).map(Secret::new).map_err(|_| Error::Corrupt)
    }

    /// Deletes a secret's data key, making it unrecoverable, and waits until that is durable.
    pub async fn shred(&self, sealed: &Sealed) -> Result<(), Error> {
        if sealed.is_recoverable() {
            self.keys.remove(sealed.key_id.as_bytes())?;
            self.keys.durable().await?;
        }
        Ok(())
    }

    /// Forgets a data key whose sealed value was never recorded (the command that carried it
    /// was refused). Best effort: an orphaned data key opens nothing anyone holds.
    pub fn discard(&self, sealed: &Sealed) {
        if let Err(error) = self.keys.remove(sealed.key_id.as_bytes()) {
            tracing::warn!(%error, "could not discard an unused data key");
        }
    }

    /// Whether a secret's data key is still in the key store.
    pub fn holds_key(&self, key_id: &str) -> Result<bool, Error> {
        Ok(self.keys.get(key_id.as_bytes())?.is_some())
    }

    /// The fingerprint an idempotency key's events record for a request: an HMAC of the digest
    /// the gateway computed (method, path, body), under a key that is not in the log, so the
    /// log does not hold a bare hash of any request body (a low-entropy body could be found
    /// from its hash), and gateways hold no secret.
    pub fn fingerprint(&self, request_digest: &[u8]) -> Vec<u8> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.fingerprint_key[..]).expect("HMAC takes any key length");
        mac.update(request_digest);
        mac.finalize().into_bytes().to_vec()
    }
}

impl Vault {
    /// The fingerprint of a connection's configuration, password included, that its test's
    /// evidence records and its create must match: an HMAC under a key not in the log, so the
    /// evidence holds no bare hash of a password (a weak one could be found from it).
    pub fn config_fingerprint(&self, vendor: domain::voip::Vendor, provider: &domain::voip::Provider) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.config_key[..]).expect("HMAC takes any key length");
        // Each part is length-prefixed, so no two configurations feed the MAC the same bytes.
        let mut part = |bytes: &[u8]| {
            mac.update(&(bytes.len() as u64).to_be_bytes());
            mac.update(bytes);
        };
        part(vendor.as_str().as_bytes());
        match provider {
            domain::voip::Provider::Sim => part(b"sim"),
            domain::voip::Provider::Sip(t) => {
                part(b"sip");
                part(t.host.as_bytes());
                part(&t.port.to_be_bytes());
                part(t.transport.as_str().as_bytes());
                part(t.username.as_bytes());
                part(t.password.expose().as_bytes());
            }
        }
        mac.finalize().into_bytes().to_vec()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault_in(store: &eventlog::Store, key: &str) -> Vault {
        Vault::new(&MasterKey::parse(key).unwrap(), store.key_store("test").unwrap())
    }

    fn store(dir: &std::path::Path) -> eventlog::Store {
        eventlog::Store::open(dir, &eventlog::Options::default()).unwrap()
    }

    #[tokio::test]
    async fn a_sealed_secret_opens_until_its_data_key_is_shredded() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate_hex();
        let vault = vault_in(&store(dir.path()), &key);
        let secret = Secret::new("hunter2".into());
        let sealed = vault.seal(&secret).unwrap();
        let other = vault.seal(&secret).unwrap();
        assert_ne!(sealed.key_id, other.key_id, "a data key per secret");
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(vault.open(&sealed).unwrap(), secret);

        // Sealed under one key id, a ciphertext does not open under another's.
        let swapped = Sealed { key_id: other.key_id.clone(), ..sealed.clone() };
        assert!(matches!(vault.open(&swapped), Err(Error::Corrupt)));

        vault.shred(&sealed).await.unwrap();
        assert!(matches!(vault.open(&sealed), Err(Error::Shredded)));
        assert!(!vault.holds_key(&sealed.key_id).unwrap());
        assert_eq!(vault.open(&other).unwrap(), secret, "only its own secret is gone");
        assert!(matches!(vault.open(&Sealed::unrecoverable()), Err(Error::Shredded)));
    }

    #[test]
    fn another_master_key_opens_nothing_and_keys_another_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let sealed = vault_in(&store, &"1".repeat(64)).seal(&Secret::new("hunter2".into())).unwrap();
        let (a, b) = (vault_in(&store, &"1".repeat(64)), vault_in(&store, &"2".repeat(64)));
        assert!(matches!(b.open(&sealed), Err(Error::Corrupt)));
        let digest = [7u8; 32];
        assert_eq!(a.fingerprint(&digest), a.fingerprint(&digest));
        assert_ne!(a.fingerprint(&digest), b.fingerprint(&digest), "the fingerprint is keyed");
        assert_ne!(a.fingerprint(&digest), digest.to_vec());
        assert!(MasterKey::parse("not hex").is_err() && MasterKey::parse(&"g".repeat(64)).is_err());
    }
}
