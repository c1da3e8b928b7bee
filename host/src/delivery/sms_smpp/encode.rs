//! A message text as `submit_sm` PDUs: GSM-7 (`data_coding` 0x00, one
//! septet per octet, the SMSC packs them) when every character is in the
//! GSM 03.38 alphabet or its extension table, else UCS-2 (0x08). A text
//! longer than one SMS is split into concatenated parts with a UDH
//! (`esm_class` 0x40), the form every SMSC and handset takes; each part
//! gets its own `message_id`, and the first one is the delivery's.
//! Encoding and splitting are rusmpp's (`rusmpp::extra`).

use rusmpp::extra::concatenation::SubmitSmMultipartExt;
use rusmpp::extra::encoding::gsm7bit::Gsm7BitUnpacked;
use rusmpp::pdus::SubmitSm;

/// GSM-7 septets in one SMS, and in one part of a concatenated one once
/// the 6-octet UDH (7 septets with its fill bits) is taken out.
const GSM7_SINGLE: usize = 160;
const GSM7_PART_LIMIT: usize = 153 + 6;
/// UCS-2 octets in one SMS (70 characters); a part is 134 octets + UDH.
const UCS2_SINGLE: usize = 140;

/// The text as one or more PDUs built on `template` (addresses, flags).
/// `reference` tells the parts of one concatenated message apart.
pub fn submit_parts(
    template: SubmitSm,
    text: &str,
    reference: u8,
) -> Result<Vec<SubmitSm>, String> {
    let gsm_len = Gsm7BitUnpacked::new().encode_to_vec(text).map(|v| v.len());
    match gsm_len {
        Ok(n) if n <= GSM7_SINGLE => template
            .multipart(text)
            .max_short_message_size(GSM7_SINGLE)
            .build()
            .map_err(|e| format!("cannot encode the text as GSM-7: {e}")),
        Ok(_) => template
            .multipart(text)
            .max_short_message_size(GSM7_PART_LIMIT)
            .reference_u8(reference)
            .build()
            .map_err(|e| format!("cannot split the text into GSM-7 parts: {e}")),
        Err(_) => template
            .multipart(text)
            .ucs2()
            .max_short_message_size(UCS2_SINGLE)
            .reference_u8(reference)
            .build()
            .map_err(|e| format!("cannot encode the text as UCS-2: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> Vec<SubmitSm> {
        submit_parts(SubmitSm::default(), text, 7).unwrap()
    }

    fn coding(sm: &SubmitSm) -> u8 {
        u8::from(sm.data_coding)
    }

    #[test]
    fn gsm7_fits_160_characters_in_one_sms() {
        let p = parts(&"a".repeat(160));
        assert_eq!(p.len(), 1);
        assert_eq!(coding(&p[0]), 0x00);
        assert_eq!(p[0].short_message().as_ref(), "a".repeat(160).as_bytes());
        // `{` costs two septets (escape + code).
        let p = parts("{1}");
        assert_eq!(
            p[0].short_message().as_ref(),
            &[0x1B, 0x28, b'1', 0x1B, 0x29]
        );
    }

    #[test]
    fn long_gsm7_is_split_into_153_septet_parts_with_a_udh() {
        let p = parts(&"b".repeat(161));
        assert_eq!(p.len(), 2);
        for sm in &p {
            assert_eq!(u8::from(sm.esm_class) & 0x40, 0x40);
            let bytes = sm.short_message().as_ref();
            // IEI 0x00 (8-bit reference), reference 7, 2 parts.
            assert_eq!(&bytes[..5], &[0x05, 0x00, 0x03, 7, 2]);
        }
        assert_eq!(p[0].short_message().len(), 6 + 153);
        assert_eq!(p[1].short_message().len(), 6 + 8);
    }

    #[test]
    fn other_scripts_go_as_ucs2() {
        let p = parts("Код: 123456");
        assert_eq!(p.len(), 1);
        assert_eq!(coding(&p[0]), 0x08);
        let utf16: Vec<u8> = "Код: 123456"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(p[0].short_message().as_ref(), utf16.as_slice());
        let p = parts(&"й".repeat(71));
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].short_message().len(), 6 + 134);
    }
}
