//! A `deliver_sm` read as a delivery receipt (SMPP 3.4 appendix B): the
//! `receipted_message_id` and `message_state` TLVs when the SMSC sends
//! them, else the `id:` and `stat:` fields of the receipt text
//! (`id:… sub:001 dlvrd:001 submit date:… done date:… stat:DELIVRD err:000`).

use rusmpp::pdus::DeliverSm;
use rusmpp::tlvs::TlvValue;
use rusmpp::values::MessageState;

use crate::delivery::receipts::Receipt;
use crate::store::HandsetState;

/// `esm_class` bits 5..2 of an SMSC delivery receipt.
const RECEIPT_TYPE: u8 = 0x04;
const TYPE_MASK: u8 = 0x3C;

/// The receipt a `deliver_sm` carries; `None` for anything else (a mobile
/// originated message, a receipt without a message id).
pub fn parse(sm: &DeliverSm) -> Option<Receipt> {
    if u8::from(sm.esm_class) & TYPE_MASK != RECEIPT_TYPE {
        return None;
    }
    let text = String::from_utf8_lossy(sm.short_message().as_ref()).into_owned();
    let mut message_id = field(&text, "id:").map(str::to_string);
    let mut state = field(&text, "stat:").map(from_stat);
    for tlv in sm.tlvs() {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(id)) => message_id = Some(id.to_string()),
            Some(TlvValue::MessageState(s)) => state = Some(from_message_state(*s)),
            _ => {}
        }
    }
    let message_id = message_id.filter(|id| !id.is_empty())?;
    Some(Receipt {
        message_id,
        state: state.unwrap_or(HandsetState::Unknown),
    })
}

/// The value of a `name:` field of the receipt text (case-insensitive).
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.split_whitespace().find_map(|word| {
        let (head, value) = word.split_at_checked(name.len())?;
        head.eq_ignore_ascii_case(name).then_some(value)
    })
}

fn from_stat(stat: &str) -> HandsetState {
    match stat.to_ascii_uppercase().as_str() {
        "DELIVRD" => HandsetState::Delivered,
        "UNDELIV" | "DELETED" => HandsetState::Undeliverable,
        "EXPIRED" => HandsetState::Expired,
        "REJECTD" => HandsetState::Rejected,
        _ => HandsetState::Unknown,
    }
}

fn from_message_state(s: MessageState) -> HandsetState {
    match s {
        MessageState::Delivered => HandsetState::Delivered,
        MessageState::Undeliverable | MessageState::Deleted => HandsetState::Undeliverable,
        MessageState::Expired => HandsetState::Expired,
        MessageState::Rejected => HandsetState::Rejected,
        _ => HandsetState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use rusmpp::types::{COctetString, OctetString};
    use rusmpp::values::EsmClass;

    use super::*;

    fn receipt(esm: u8, text: &str) -> DeliverSm {
        DeliverSm::builder()
            .esm_class(EsmClass::from(esm))
            .short_message(OctetString::from_str(text).unwrap())
            .build()
    }

    #[test]
    fn the_receipt_text_gives_id_and_state() {
        let sm = receipt(
            0x04,
            "id:7f3a sub:001 dlvrd:001 submit date:2612011200 done date:2612011201 stat:DELIVRD err:000 text:Your code",
        );
        let r = parse(&sm).unwrap();
        assert_eq!(
            (r.message_id.as_str(), r.state),
            ("7f3a", HandsetState::Delivered)
        );
        let r = parse(&receipt(0x04, "id:9 stat:UNDELIV err:001")).unwrap();
        assert_eq!(r.state, HandsetState::Undeliverable);
        let r = parse(&receipt(0x04, "id:9 stat:EXPIRED")).unwrap();
        assert_eq!(r.state, HandsetState::Expired);
        let r = parse(&receipt(0x04, "id:9 stat:REJECTD")).unwrap();
        assert_eq!(r.state, HandsetState::Rejected);
        let r = parse(&receipt(0x04, "id:9 stat:ACCEPTD")).unwrap();
        assert_eq!(r.state, HandsetState::Unknown);
    }

    #[test]
    fn tlvs_win_over_the_text() {
        let mut sm = receipt(0x04, "id:text-id stat:UNDELIV");
        sm.push_tlv(
            rusmpp::tlvs::MessageDeliveryRequestTlvValue::ReceiptedMessageId(
                COctetString::from_str("tlv-id").unwrap(),
            ),
        );
        sm.push_tlv(rusmpp::tlvs::MessageDeliveryRequestTlvValue::MessageState(
            MessageState::Delivered,
        ));
        let r = parse(&sm).unwrap();
        assert_eq!(
            (r.message_id.as_str(), r.state),
            ("tlv-id", HandsetState::Delivered)
        );
    }

    #[test]
    fn other_messages_are_not_receipts() {
        assert!(parse(&receipt(0x00, "id:1 stat:DELIVRD")).is_none());
        assert!(parse(&receipt(0x04, "no fields here")).is_none());
    }
}
