//! Password hashes and token secrets.

use std::cell::RefCell;

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The operating system's generator is the only source of randomness onebox uses; if it
    // fails the host is unusable and no secret may be made.
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    b
}

// argon2id with one of OWASP's recommended settings (7 MiB, 5 passes, 1 lane). Of the
// equivalent settings it needs the least memory, which matters on a small box.
const M_COST_KIB: u32 = 7 * 1024;
const T_COST: u32 = 5;
const P_COST: u32 = 1;
const OUTPUT_LEN: usize = 32;

thread_local! {
    /// The argon2 work area, reused by every hash this thread computes: allocating it per hash
    /// leaves the allocator holding tens of MiB per thread after a burst of logins.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

fn argon2id(params: Params, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<()> {
    let need = params.block_count();
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        if blocks.len() < need {
            blocks.resize(need, Block::default());
        }
        hasher
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..need])
            .map_err(|_| Error::Hash)
    })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// Hashes a password with argon2id and a fresh salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = random_bytes::<16>();
    let params =
        Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN)).map_err(|_| Error::Hash)?;
    let mut out = [0u8; OUTPUT_LEN];
    argon2id(params, password.as_bytes(), &salt, &mut out)?;
    Ok(format!(
        "$argon2id$v=19$m={M_COST_KIB},t={T_COST},p={P_COST}${}${}",
        b64(&salt),
        b64(&out)
    ))
}

/// Checks a password against a stored PHC string, with the parameters the string names. A
/// malformed or foreign hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return false;
    }
    let (Ok(params), Some(salt), Some(expected)) =
        (Params::try_from(&parsed), parsed.salt, parsed.hash)
    else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let expected = expected.as_bytes();
    let mut out = vec![0u8; expected.len()];
    if argon2id(params, password.as_bytes(), salt, &mut out).is_err() {
        return false;
    }
    // Constant time: every byte is compared whatever the first difference.
    out.iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// A hash of a fixed password, checked when a user does not exist so that a login for an
/// unknown user costs the same time as one with a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy").unwrap_or_default())
}

/// A new token: 32 random bytes, URL-safe base64 (43 characters).
pub fn new_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A new audit id: 16 random bytes, URL-safe base64 (22 characters), as Keystone makes them.
pub fn new_audit_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

/// A password for accounts `onebox init` creates: 24 characters from a URL-safe alphabet.
pub fn new_password() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<18>())
}

/// What the store keeps of a token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip() {
        let h = hash_password("s3cret").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cret!", &h));
        assert!(!verify_password("s3cret", "not a hash"));
        // Hashes made with other argon2id parameters still verify.
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        let other = Argon2::default()
            .hash_password(b"pw", &salt)
            .expect("hash")
            .to_string();
        assert!(verify_password("pw", &other));
        assert!(!verify_password("px", &other));
    }

    #[test]
    fn tokens_are_unique_and_hashes_stable() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
