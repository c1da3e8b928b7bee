//! What a failed submit means for the delivery (SPEC §4 outcome classes):
//! a full queue, throttling, timeouts and a dropped session are worth a
//! retry; a bad destination is a permanent invalid recipient; a refused
//! bind is a misconfiguration. Details carry the command status name
//! (`ESME_RTHROTTLED`), never a credential.

use rusmpp::CommandStatus;
use rusmppc::error::Error;

use crate::delivery::SendOutcome;

/// The SMPP name of a command status (`ESME_RINVPASWD`), or its number.
pub fn status_name(status: CommandStatus) -> String {
    match status {
        CommandStatus::EsmeRxTAppn => "ESME_RX_T_APPN".into(),
        CommandStatus::EsmeRxPAppn => "ESME_RX_P_APPN".into(),
        CommandStatus::EsmeRxRAppn => "ESME_RX_R_APPN".into(),
        CommandStatus::Other(n) => format!("0x{n:08X}"),
        other => {
            let debug = format!("{other:?}");
            match debug.strip_prefix("Esme") {
                Some(rest) => format!("ESME_{}", rest.to_ascii_uppercase()),
                None => debug,
            }
        }
    }
}

/// The outcome of a submit the SMSC answered with an error status.
pub fn for_status(status: CommandStatus) -> SendOutcome {
    use CommandStatus as S;
    let name = status_name(status);
    match status {
        S::EsmeRthrottled
        | S::EsmeRmsgqful
        | S::EsmeRsyserr
        | S::EsmeRxTAppn
        | S::EsmeRsubmitfail
        | S::EsmeRinvbndsts => SendOutcome::transient(format!("SMSC busy or failing: {name}")),
        S::EsmeRinvdstadr | S::EsmeRinvdstton | S::EsmeRinvdstnpi | S::EsmeRxRAppn => {
            SendOutcome::permanent(format!("invalid recipient: the SMSC answered {name}"))
        }
        _ => SendOutcome::permanent(format!("the SMSC refused the message: {name}")),
    }
}

/// The outcome of a submit that got no good answer.
pub fn for_error(e: &Error) -> SendOutcome {
    match e {
        Error::UnexpectedResponse { response } => for_status(response.status()),
        Error::ResponseTimeout { timeout, .. } => {
            SendOutcome::transient(format!("no submit_sm_resp within {timeout:?}"))
        }
        Error::Encode(e) => SendOutcome::permanent(format!("cannot encode the submit: {e}")),
        other => SendOutcome::transient(format!("SMPP session dropped: {other}")),
    }
}

/// A bind the SMSC refused, seen by a send.
pub fn misconfigured(status: &str) -> SendOutcome {
    SendOutcome::permanent(format!(
        "misconfigured: the SMSC refused the bind: {status}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::OutcomeClass;

    #[test]
    fn names_are_smpp_names() {
        assert_eq!(status_name(CommandStatus::EsmeRinvpaswd), "ESME_RINVPASWD");
        assert_eq!(
            status_name(CommandStatus::EsmeRthrottled),
            "ESME_RTHROTTLED"
        );
        assert_eq!(status_name(CommandStatus::EsmeRxTAppn), "ESME_RX_T_APPN");
        assert_eq!(status_name(CommandStatus::Other(0x401)), "0x00000401");
    }

    #[test]
    fn statuses_map_onto_outcome_classes() {
        let class = |s| for_status(s).class;
        assert_eq!(
            class(CommandStatus::EsmeRthrottled),
            OutcomeClass::Transient
        );
        assert_eq!(class(CommandStatus::EsmeRmsgqful), OutcomeClass::Transient);
        assert_eq!(
            class(CommandStatus::EsmeRinvdstadr),
            OutcomeClass::Permanent
        );
        assert_eq!(
            class(CommandStatus::EsmeRinvesmclass),
            OutcomeClass::Permanent
        );
        assert!(
            for_status(CommandStatus::EsmeRinvdstadr)
                .detail
                .starts_with("invalid recipient")
        );
        assert!(
            misconfigured("ESME_RINVPASWD")
                .detail
                .contains("ESME_RINVPASWD")
        );
    }
}
