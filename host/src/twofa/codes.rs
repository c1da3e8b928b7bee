//! One-time codes: generated from a CSPRNG, stored only as an HMAC keyed by
//! the server secret, compared in constant time.

use rand::Rng;
use subtle::ConstantTimeEq;

use crate::crypto::Keys;

/// `len` random decimal digits.
pub fn generate(len: u32) -> String {
    // ThreadRng is a CSPRNG (ChaCha12) seeded and reseeded from the OS.
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// Users type `123-456` or `123 456`; only the digits count.
pub fn normalize(input: &str) -> String {
    input.chars().filter(char::is_ascii_digit).collect()
}

/// The stored form of a code, bound to where it may be used.
pub fn mac(keys: &Keys, tenant: &str, subject: &str, purpose: &str, code: &str) -> String {
    let data = format!("code\0{tenant}\0{subject}\0{purpose}\0{code}");
    hex::encode(keys.mac(data.as_bytes()))
}

pub fn mac_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_digits_of_the_length_asked() {
        for len in 6..=10 {
            let c = generate(len);
            assert_eq!(c.len(), len as usize);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
        assert_ne!(generate(10), generate(10));
    }

    #[test]
    fn mac_binds_tenant_subject_and_purpose() {
        let k = Keys::from_master(&[1; 32]);
        let m = mac(&k, "t", "user:1", "email", "123456");
        assert!(mac_eq(&m, &mac(&k, "t", "user:1", "email", "123456")));
        assert!(!mac_eq(&m, &mac(&k, "t", "user:2", "email", "123456")));
        assert!(!mac_eq(&m, &mac(&k, "t2", "user:1", "email", "123456")));
        assert!(!mac_eq(&m, &mac(&k, "t", "user:1", "sms", "123456")));
        assert!(!m.contains("123456"));
        assert_eq!(normalize("123-456 "), "123456");
    }
}
