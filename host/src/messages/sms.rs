//! How long a text is as SMS: GSM 03.38 (7-bit default alphabet, 160
//! septets alone, 153 per part when concatenated; the extension table costs
//! two septets a character) or UCS-2 (70 code units alone, 67 per part).
//! A text with any character outside both GSM tables is sent as UCS-2.

use serde::Serialize;

/// The GSM 03.38 default alphabet (the escape at 0x1B left out).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table: each is an escape plus a septet.
const GSM_EXTENSION: &str = "^{}\\[~]|€\u{0c}";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Encoding {
    #[serde(rename = "GSM-7")]
    Gsm7,
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "GSM-7" => Some(Encoding::Gsm7),
            "UCS-2" => Some(Encoding::Ucs2),
            _ => None,
        }
    }
}

/// A text's SMS encoding and the number of messages it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SmsLength {
    pub encoding: Encoding,
    pub segments: u32,
}

/// Septets of `text` in GSM-7, or `None` if it needs UCS-2.
fn gsm_septets(text: &str) -> Option<u32> {
    text.chars().try_fold(0u32, |n, c| {
        if GSM_BASIC.contains(c) {
            Some(n + 1)
        } else if GSM_EXTENSION.contains(c) {
            Some(n + 2)
        } else {
            None
        }
    })
}

fn parts(units: u32, single: u32, per_part: u32) -> u32 {
    if units <= single {
        1
    } else {
        units.div_ceil(per_part)
    }
}

pub fn length(text: &str) -> SmsLength {
    match gsm_septets(text) {
        Some(septets) => SmsLength {
            encoding: Encoding::Gsm7,
            segments: parts(septets, 160, 153),
        },
        None => SmsLength {
            encoding: Encoding::Ucs2,
            segments: parts(text.encode_utf16().count() as u32, 70, 67),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_alphabet_is_128_characters() {
        assert_eq!(GSM_BASIC.chars().count(), 127); // + the escape
        assert_eq!(GSM_EXTENSION.chars().count(), 10);
    }

    #[test]
    fn gsm_limits() {
        let l = |s: &str| {
            let x = length(s);
            (x.encoding, x.segments)
        };
        assert_eq!(l(&"a".repeat(160)), (Encoding::Gsm7, 1));
        assert_eq!(l(&"a".repeat(161)), (Encoding::Gsm7, 2));
        assert_eq!(l(&"a".repeat(306)), (Encoding::Gsm7, 2));
        assert_eq!(l(&"a".repeat(307)), (Encoding::Gsm7, 3));
        // Extension characters count twice.
        assert_eq!(l(&"€".repeat(80)), (Encoding::Gsm7, 1));
        assert_eq!(l(&"€".repeat(81)), (Encoding::Gsm7, 2));
        assert_eq!(
            l("Ihr Bestätigungscode lautet 123456."),
            (Encoding::Gsm7, 1)
        );
    }

    #[test]
    fn ucs2_limits() {
        let l = |s: &str| {
            let x = length(s);
            (x.encoding, x.segments)
        };
        assert_eq!(l(&"ж".repeat(70)), (Encoding::Ucs2, 1));
        assert_eq!(l(&"ж".repeat(71)), (Encoding::Ucs2, 2));
        assert_eq!(l(&"ж".repeat(134)), (Encoding::Ucs2, 2));
        // One character outside GSM makes the whole text UCS-2.
        assert_eq!(l(&format!("{}ó", "a".repeat(69))), (Encoding::Ucs2, 1));
        assert_eq!(l(&format!("{}ó", "a".repeat(70))), (Encoding::Ucs2, 2));
        // An emoji is two UTF-16 units.
        assert_eq!(l(&"😀".repeat(35)), (Encoding::Ucs2, 1));
        assert_eq!(l(&"😀".repeat(36)), (Encoding::Ucs2, 2));
    }
}
