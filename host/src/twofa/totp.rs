//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s) through `totp-rs`, with a ±1 step
//! window and a replay guard: a step is accepted at most once.

use base64::Engine;
use rand::RngCore;
use totp_rs::{Algorithm, Secret, TOTP};

pub const STEP_SECONDS: u64 = 30;

/// A new 160-bit secret.
pub fn new_secret() -> Vec<u8> {
    let mut s = vec![0u8; 20];
    rand::rng().fill_bytes(&mut s);
    s
}

pub fn base32(secret: &[u8]) -> String {
    match Secret::Raw(secret.to_vec()).to_encoded() {
        Secret::Encoded(s) => s,
        Secret::Raw(_) => String::new(),
    }
}

fn totp(secret: &[u8]) -> TOTP {
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, STEP_SECONDS, secret.to_vec())
}

/// The code for a time step (for tests and for generating).
pub fn code_at(secret: &[u8], unix_seconds: u64) -> String {
    totp(secret).generate(unix_seconds)
}

/// The time step `code` matches within ±1 step of `now`, if any. The caller
/// must still check the step against the last accepted one.
pub fn matching_step(secret: &[u8], code: &str, now_seconds: u64) -> Option<i64> {
    let t = totp(secret);
    let current = (now_seconds / STEP_SECONDS) as i64;
    [current, current - 1, current + 1]
        .into_iter()
        .find(|step| {
            *step >= 0
                && crate::twofa::codes::mac_eq(&t.generate(*step as u64 * STEP_SECONDS), code)
        })
}

/// `otpauth://totp/<issuer>:<account>?secret=…&issuer=…` for authenticator apps.
pub fn otpauth_url(secret: &[u8], issuer: &str, account: &str) -> String {
    let enc = |s: &str| {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period={STEP_SECONDS}",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

/// The URL as a QR code, an SVG `data:` URI.
pub fn qr_data_uri(url: &str) -> Result<String, String> {
    let code =
        qrcode::QrCode::new(url.as_bytes()).map_err(|e| format!("cannot make QR code: {e}"))?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    Ok(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

/// Rocket.Chat's backup codes: 12 of 8 characters from an unambiguous alphabet.
pub fn backup_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..12)
        .map(|_| {
            (0..8)
                .map(|_| {
                    let i = (rng.next_u32() as usize) % ALPHABET.len();
                    char::from(ALPHABET[i])
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vector() {
        // RFC 6238 appendix B, SHA-1 secret "12345678901234567890", T = 59 s → 94287082 (8 digits);
        // the 6-digit code is its last six digits.
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59), "287082");
        assert_eq!(code_at(secret, 1_111_111_109), "081804");
    }

    #[test]
    fn window_is_plus_minus_one_step() {
        let s = new_secret();
        let now = 1_700_000_000;
        let step = (now / STEP_SECONDS) as i64;
        assert_eq!(matching_step(&s, &code_at(&s, now), now), Some(step));
        assert_eq!(
            matching_step(&s, &code_at(&s, now - 30), now),
            Some(step - 1)
        );
        assert_eq!(
            matching_step(&s, &code_at(&s, now + 30), now),
            Some(step + 1)
        );
        assert_eq!(matching_step(&s, &code_at(&s, now - 90), now), None);
    }

    #[test]
    fn url_and_qr() {
        let s = new_secret();
        let url = otpauth_url(&s, "postern", "alice");
        assert!(url.starts_with("otpauth://totp/postern:alice?secret="));
        assert!(url.contains(&base32(&s)));
        assert!(
            qr_data_uri(&url)
                .unwrap()
                .starts_with("data:image/svg+xml;base64,")
        );
        let codes = backup_codes();
        assert_eq!(codes.len(), 12);
        assert!(codes.iter().all(|c| c.len() == 8));
    }
}
