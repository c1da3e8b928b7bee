//! `[[sms_gateway]] kind = "smpp"` against the loopback SMSC of
//! `support::smsc` (rusmpp's codec on the server side): texts, outcomes,
//! receipts as the handset state, a killed SMSC, a full window, unbind.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::eventually;
use crate::support::server::Postern;
use crate::support::smsc::Smsc;

pub const SYSTEM_ID: &str = "postern";
pub const PASSWORD: &str = "smpp-pw1";

const FAST: &str = "[delivery]\nretry_base_ms = 100\nretry_max_ms = 300\nworkers = 32\n\
    [limits]\nsends_per_destination = 10000\ntenant_deliveries_per_minute = 100000\n\
    tenant_max_concurrent_deliveries = 64\n";

pub fn gateway(name: &str, smsc: &Smsc, password: &str, extra: &str) -> String {
    format!(
        "[[sms_gateway]]\nname = \"{name}\"\nkind = \"smpp\"\nsmsc_host = \"127.0.0.1\"\n\
         smsc_port = {}\nsystem_id = \"{SYSTEM_ID}\"\npassword = \"{password}\"\n\
         s_addr = \"Postern\"\ns_addr_ton = 5\n{extra}\n",
        smsc.addr.port()
    )
}

async fn start(smsc: &Smsc, extra: &str) -> Postern {
    Postern::start(&format!("{FAST}{}", gateway("smpp", smsc, PASSWORD, extra))).await
}

fn id(v: &Value) -> String {
    v["delivery"]["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn smpp_a_russian_number_gets_its_text_as_ucs2_through_the_api() {
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD).await;
    let p = start(&smsc, "").await;
    let (s, v) = p.test_send("smpp", "+79161234567").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["delivery"]["status"], "delivered", "{v}");
    assert_eq!(v["delivery"]["locale"], "ru", "{v}");
    let got = &smsc.received()[0];
    assert_eq!(got.data_coding, 0x08, "{got:?}");
    assert!(
        got.text
            .chars()
            .any(|c| ('\u{0400}'..='\u{04FF}').contains(&c))
            && regex::Regex::new(r"\d{6}").unwrap().is_match(&got.text),
        "the Cyrillic text with its code arrived intact: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smpp_delivers_a_gsm7_text_and_the_receipt_marks_the_handset_state() {
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD).await;
    smsc.send_receipts("DELIVRD");
    let p = start(&smsc, "").await;
    let (s, v) = p.test_send("smpp", "+491701234567").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["delivery"]["status"], "delivered", "{v}");
    let got = &smsc.received()[0];
    assert_eq!(got.to, "491701234567");
    assert_eq!(got.data_coding, 0x00);
    // A German number gets the German text (the locale chain), GSM-7 all the same.
    let text =
        regex::Regex::new(r"^Ihr Bestätigungscode lautet \d{6}\. Er ist 10 Minuten gültig\.$");
    assert!(text.unwrap().is_match(&got.text), "{got:?}");
    assert_eq!(v["delivery"]["providerId"], got.message_id.as_str());
    let d = eventually(Duration::from_secs(10), "the handset state", || async {
        let d = p.delivery(&id(&v)).await;
        d.get("handset").is_some().then_some(d)
    })
    .await;
    assert_eq!(d["handset"]["state"], "delivered", "{d}");
    assert!(d["handset"]["at"].as_str().unwrap().ends_with('Z'), "{d}");
    // The handset state is recorded before the answer reaches the SMSC's
    // reader: wait for it rather than race it.
    let answered = eventually(Duration::from_secs(10), "deliver_sm_resp", || async {
        let n = smsc.counts().3;
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(answered, 1, "the receipt is answered with deliver_sm_resp");
    let m = p.metrics().await;
    // `matched` is "false" when the receipt overtook the record of its submit.
    let counted = regex::Regex::new(
        r#"postern_handset_receipts_total\{channel="smpp",matched="(true|false)",state="delivered",tenant="default"\} 1"#,
    );
    assert!(counted.unwrap().is_match(&m), "{m}");
    eventually(
        Duration::from_secs(10),
        "readyz to show the session",
        || async {
            let (_, r) = p.get("/readyz").await;
            (r["channels"]["smpp"]["status"] == "ok").then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn smpp_undeliverable_receipts_and_unknown_ids_are_answered() {
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD).await;
    smsc.send_receipts("UNDELIV");
    smsc.send_stray_receipts();
    let p = start(&smsc, "").await;
    let (s, v) = p.test_send("smpp", "+441632960000").await;
    assert_eq!(s, 200, "{v}");
    let d = eventually(Duration::from_secs(10), "the handset state", || async {
        let d = p.delivery(&id(&v)).await;
        d.get("handset").is_some().then_some(d)
    })
    .await;
    assert_eq!(d["handset"]["state"], "undeliverable", "{d}");
    assert_eq!(d["status"], "delivered", "the SMSC took it: {d}");
    eventually(
        Duration::from_secs(10),
        "both receipts answered",
        || async { (smsc.counts().3 == 2).then_some(()) },
    )
    .await;
    let m = p.metrics().await;
    assert!(
        m.contains(r#"postern_handset_receipts_total{channel="smpp",matched="false",state="delivered",tenant="default"} 1"#),
        "the stray receipt is counted and otherwise ignored: {m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smpp_throttled_submit_is_retried_and_arrives() {
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD).await;
    smsc.throttle_next(2);
    let p = start(&smsc, "").await;
    let (s, v) = p.test_send("smpp", "+491701234567").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["delivery"]["status"], "queued", "{v}");
    let d = p.settled(&id(&v), Duration::from_secs(20)).await;
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(smsc.throttled(), 2);
    assert_eq!(smsc.received().len(), 1);
    let first = &d["attempts"][0];
    assert_eq!(first["outcome"], "transient", "{d}");
    assert!(
        first["detail"]
            .as_str()
            .unwrap()
            .contains("ESME_RTHROTTLED"),
        "{d}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smpp_invalid_destination_fails_permanently_and_falls_back() {
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD).await;
    smsc.refuse_destinations("4915");
    let backup = Smsc::start(SYSTEM_ID, PASSWORD).await;
    let config = format!(
        "{FAST}{}{}",
        gateway("smpp", &smsc, PASSWORD, "fallback = \"backup\""),
        gateway("backup", &backup, PASSWORD, "")
    );
    let p = Postern::start(&config).await;
    let (s, v) = p.test_send("smpp", "+4915112345678").await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["delivery"]["status"], "failed", "{v}");
    let attempts = v["delivery"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "no retry of a permanent failure: {v}");
    let detail = attempts[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("invalid recipient") && detail.contains("ESME_RINVDSTADR"),
        "{detail}"
    );
    eventually(Duration::from_secs(10), "the fallback delivery", || async {
        (backup.received().len() == 1).then_some(())
    })
    .await;
    assert_eq!(backup.received()[0].to, "4915112345678");
    let (_, list) = p.get("/api/v1/deliveries").await;
    let fb = list["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["fallbackOf"] == id(&v).as_str())
        .cloned()
        .expect("a fallback delivery");
    assert_eq!(fb["channel"], "backup");
}

#[tokio::test(flavor = "multi_thread")]
async fn smpp_wrong_password_is_misconfigured_without_the_password() {
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD).await;
    let p = Postern::start(&format!("{FAST}{}", gateway("smpp", &smsc, "wrongpw9", ""))).await;
    let (s, v) = p.test_send("smpp", "+491701234567").await;
    assert_eq!(s, 502, "{v}");
    let detail = v["delivery"]["attempts"][0]["detail"].as_str().unwrap();
    assert_eq!(
        detail, "misconfigured: the SMSC refused the bind: ESME_RINVPASWD",
        "{v}"
    );
    assert!(!v.to_string().contains("wrongpw9"));
    assert!(smsc.counts().1 >= 1);
    let ready = eventually(
        Duration::from_secs(10),
        "readyz to show the refusal",
        || async {
            let (_, r) = p.get("/readyz").await;
            (r["channels"]["smpp"]["status"] == "failing").then_some(r)
        },
    )
    .await;
    let why = ready["channels"]["smpp"]["detail"].as_str().unwrap();
    assert!(why.contains("ESME_RINVPASWD"), "{ready}");
    assert!(!p.logs().contains("wrongpw9"));
}

#[tokio::test(flavor = "multi_thread")]
async fn smpp_killing_the_smsc_mid_run_loses_no_delivery() {
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD).await;
    let p = start(&smsc, "timeout_seconds = 1").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (s, v) = p.test_send("smpp", &format!("+4917000000{i:02}")).await;
        assert_eq!(s, 200, "{v}");
        ids.push(id(&v));
    }
    smsc.kill();
    for i in 5..10 {
        let (s, v) = p.test_send("smpp", &format!("+4917000000{i:02}")).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["delivery"]["status"], "queued", "{v}");
        ids.push(id(&v));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    smsc.restart().await;
    for id in &ids {
        let d = p.settled(id, Duration::from_secs(30)).await;
        assert_eq!(d["status"], "delivered", "{d}");
    }
    let mut to: Vec<String> = smsc.received().into_iter().map(|r| r.to).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 10, "{to:?}");
    assert!(smsc.counts().0 >= 2, "re-bound after the restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn smpp_200_submits_with_window_10_all_arrive_and_shutdown_unbinds() {
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD).await;
    let mut p = start(&smsc, "window = 10").await;
    let p_ref = Arc::new(Postern::client());
    let sends = (0..200).map(|i| {
        let client = p_ref.clone();
        let url = p.url("/api/v1/channels/smpp/test");
        async move {
            let r = client
                .post(url)
                .bearer_auth(crate::support::server::ADMIN)
                .json(&json!({ "sendTo": format!("+4916{i:08}") }))
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            v["delivery"]["id"].as_str().unwrap().to_string()
        }
    });
    let ids = futures::future::join_all(sends).await;
    for id in &ids {
        let d = p.settled(id, Duration::from_secs(60)).await;
        assert_eq!(d["status"], "delivered", "{d}");
    }
    let mut to: Vec<String> = smsc.received().into_iter().map(|r| r.to).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 200);
    assert_eq!(smsc.counts().0, 1, "one session");
    assert!(p.terminate(Duration::from_secs(15)));
    assert_eq!(smsc.counts().2, 1, "unbind on shutdown");
}

/// The sender on its own (the API's texts are English until message
/// templates land): UCS-2 and concatenated texts through a real session.
mod texts {
    use postern::delivery::sms_gateway::SmsGatewayConfig;
    use postern::delivery::sms_smpp::file_sender;
    use postern::delivery::{Message, OutcomeClass, Sender};
    use postern::secret::Secret;

    use super::*;

    fn message(to: &str, text: &str) -> Message {
        Message {
            send_to: to.into(),
            code: "123456".into(),
            ttl_seconds: 600,
            text: text.into(),
            username: "alice".into(),
            user_agent: None,
            remote_address: None,
            locale: None,
            email: None,
        }
    }

    async fn sender(smsc: &Smsc) -> impl Sender {
        let g = SmsGatewayConfig {
            name: "smpp".into(),
            kind: "smpp".into(),
            smsc_host: "127.0.0.1".into(),
            smsc_port: smsc.addr.port(),
            system_id: SYSTEM_ID.into(),
            password: Some(Secret::new(PASSWORD)),
            ..Default::default()
        };
        file_sender(&g, "sms_gateway[0]").unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn smpp_gsm7_ucs2_and_long_texts_arrive_intact() {
        let smsc = Smsc::start(SYSTEM_ID, PASSWORD).await;
        let s = sender(&smsc).await;
        let cases = [
            (
                "Code 123456 für Jörg: {gültig} 10 Min. [ok] ~ €5 @home_",
                0x00,
                1,
            ),
            ("Ваш код: 123456. Он действует 10 минут.", 0x08, 1),
            ("验证码 123456，10 分钟内有效。", 0x08, 1),
        ];
        for (i, (text, coding, parts)) in cases.iter().enumerate() {
            let o = s.send(&message(&format!("+49170000{i}"), text)).await;
            assert_eq!(o.class, OutcomeClass::Delivered, "{}", o.detail);
            let got = smsc.received().pop().unwrap();
            assert_eq!(
                (got.text.as_str(), got.data_coding, got.parts),
                (*text, *coding, *parts)
            );
            assert_eq!(o.provider_id.as_deref(), Some(got.message_id.as_str()));
        }
        let long_gsm = "Your verification code is 123456. ".repeat(6);
        let long_ucs2 = "Ваш код подтверждения 123456. ".repeat(4);
        for (text, coding, parts) in [(&long_gsm, 0x00, 2), (&long_ucs2, 0x08, 2)] {
            let o = s.send(&message("+491700009", text)).await;
            assert_eq!(o.class, OutcomeClass::Delivered, "{}", o.detail);
            assert!(o.detail.contains("(2 parts)"), "{}", o.detail);
            let got = smsc.received().pop().unwrap();
            assert_eq!(
                (got.text.as_str(), got.data_coding, got.parts),
                (text.as_str(), coding, parts)
            );
        }
        s.shutdown().await;
        assert_eq!(smsc.counts().2, 1, "unbound");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn smpp_an_oversized_pdu_closes_the_session_which_rebinds_and_delivers() {
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD).await;
    smsc.poison_next();
    let p = start(&smsc, "").await;
    let (s, v) = p.test_send("smpp", "+491701234567").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["delivery"]["status"], "queued", "{v}");
    let d = p.settled(&id(&v), Duration::from_secs(20)).await;
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(d["attempts"][0]["outcome"], "transient", "{d}");
    assert_eq!(smsc.received().len(), 1);
    assert!(smsc.counts().0 >= 2, "re-bound");
    let (s, _) = p.get("/healthz").await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn smpp_tenant_channel_sends_and_keeps_the_password_secret() {
    use crate::support::api::{req, tenant};
    let smsc = Smsc::start(SYSTEM_ID, PASSWORD).await;
    smsc.send_receipts("DELIVRD");
    let p = Postern::start(&format!("{FAST}[plugins]\nallow_private_networks = true\n")).await;
    let key = tenant(&p, "acme").await;
    let mut body = json!({
        "kind": "sms-smpp",
        "config": { "smsc_host": "127.0.0.1", "smsc_port": smsc.addr.port(),
                    "system_id": SYSTEM_ID, "s_addr": "Acme", "window": 4 },
        "secrets": { "password": PASSWORD },
    });
    let path = "/t/acme/api/v1/channels/sms";
    body["config"]["smsc_typo"] = json!(1);
    let (s, v) = req(&p, "PUT", path, &key, Some(body.clone())).await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("config.smsc_typo"), "{v}");
    body["config"].as_object_mut().unwrap().remove("smsc_typo");
    let (s, v) = req(&p, "PUT", path, &key, Some(body)).await;
    assert_eq!(s, 200, "{v}");
    assert!(!v.to_string().contains(PASSWORD));
    let test = json!({ "sendTo": "+491701234567" });
    let (s, v) = req(
        &p,
        "POST",
        "/t/acme/api/v1/channels/sms/test",
        &key,
        Some(test),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(smsc.received()[0].to, "491701234567");
    let id = id(&v);
    let d = eventually(Duration::from_secs(10), "the handset state", || async {
        let (_, v) = req(
            &p,
            "GET",
            &format!("/t/acme/api/v1/deliveries/{id}"),
            &key,
            None,
        )
        .await;
        v["delivery"]
            .get("handset")
            .is_some()
            .then(|| v["delivery"].clone())
    })
    .await;
    assert_eq!(d["handset"]["state"], "delivered", "{d}");
}

#[test]
fn smpp_config_without_smsc_host_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[sms_gateway]]\nname = \"smpp\"\nkind = \"smpp\"\nsystem_id = \"x\"\n",
    )
    .unwrap();
    let (code, _, err) = crate::support::server::run_cli(
        dir.path(),
        &["config", "check", "-c", bad.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("sms_gateway[0].smsc_host") && err.contains("required"),
        "{err}"
    );
}
