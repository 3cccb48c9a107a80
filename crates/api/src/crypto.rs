//! Personal data at rest: national ids and phone numbers are encrypted with AES-256-GCM
//! before they reach the database, and looked up by a keyed hash (HMAC-SHA256). Both keys
//! are derived from one master key that lives outside the database (DANBAO_DATA_KEY), so a
//! dump alone reveals no id.
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const NONCE_LEN: usize = 12;
/// Version byte in front of every ciphertext, so keys or algorithms can change later.
const FORMAT_V1: u8 = 1;

#[derive(Clone)]
pub struct PiiKeys {
    cipher: Aes256Gcm,
    mac_key: [u8; 32],
}

impl std::fmt::Debug for PiiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PiiKeys(..)")
    }
}

fn derive(master: &[u8], label: &[u8]) -> [u8; 32] {
    // HMAC as a KDF with distinct labels: the encryption and lookup keys are independent.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(master).expect("HMAC takes any key length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

impl PiiKeys {
    /// From a master key of at least 32 bytes.
    pub fn from_master(master: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            master.len() >= 32,
            "the personal-data key must be at least 32 bytes"
        );
        let enc = derive(master, b"danbao/pii/aes-256-gcm/v1");
        Ok(PiiKeys {
            cipher: Aes256Gcm::new_from_slice(&enc)
                .map_err(|_| anyhow::anyhow!("bad key length"))?,
            mac_key: derive(master, b"danbao/pii/hmac-sha256/v1"),
        })
    }

    /// From hex text (64 hex digits or more), as given in DANBAO_DATA_KEY.
    pub fn from_hex(text: &str) -> anyhow::Result<Self> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| anyhow::anyhow!("DANBAO_DATA_KEY must be hex (64 hex digits)"))?;
        Self::from_master(&bytes)
    }

    pub fn encrypt(&self, plaintext: &str) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .expect("AES-GCM encryption of a short text cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn decrypt(&self, blob: &[u8]) -> anyhow::Result<String> {
        anyhow::ensure!(
            blob.len() > 1 + NONCE_LEN && blob[0] == FORMAT_V1,
            "not a danbao ciphertext"
        );
        let nonce: &Nonce<_> = (&blob[1..1 + NONCE_LEN]).into();
        let pt = self
            .cipher
            .decrypt(nonce, &blob[1 + NONCE_LEN..])
            .map_err(|_| {
                anyhow::anyhow!("personal data does not decrypt: wrong DANBAO_DATA_KEY?")
            })?;
        Ok(String::from_utf8(pt)?)
    }

    /// Keyed hash for equality look-ups; the same input always gives the same 32 bytes.
    pub fn lookup_hash(&self, normalised: &str) -> Vec<u8> {
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.mac_key).expect("HMAC takes any key length");
        mac.update(normalised.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fresh_nonces() {
        let k = PiiKeys::from_master(&[9u8; 32]).unwrap();
        let a = k.encrypt("11010519491231002X");
        let b = k.encrypt("11010519491231002X");
        assert_ne!(a, b, "the same id must not encrypt to the same bytes");
        assert_eq!(k.decrypt(&a).unwrap(), "11010519491231002X");
        assert!(
            !a.windows(6).any(|w| w == b"110105"),
            "plaintext leaked into the ciphertext"
        );
    }

    #[test]
    fn tampering_and_wrong_keys_fail() {
        let k = PiiKeys::from_master(&[9u8; 32]).unwrap();
        let mut blob = k.encrypt("13800138000");
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert!(k.decrypt(&blob).is_err());
        let other = PiiKeys::from_master(&[8u8; 32]).unwrap();
        assert!(other.decrypt(&k.encrypt("x")).is_err());
    }

    #[test]
    fn lookup_hash_is_keyed_and_stable() {
        let k = PiiKeys::from_master(&[9u8; 32]).unwrap();
        let other = PiiKeys::from_master(&[8u8; 32]).unwrap();
        assert_eq!(k.lookup_hash("id"), k.lookup_hash("id"));
        assert_ne!(k.lookup_hash("id"), other.lookup_hash("id"));
        assert_eq!(k.lookup_hash("id").len(), 32);
        assert!(PiiKeys::from_master(&[1u8; 16]).is_err());
        assert!(PiiKeys::from_hex("zz").is_err());
    }
}
