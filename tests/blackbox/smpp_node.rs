//! The SMPP sender against an independent SMSC: the `smpp` npm package's
//! server side (`tests/smsc-node/smsc.js`, run with node). `.ci/run` and
//! `scripts/test` install it (`npm ci` in `tests/smsc-node`); without node
//! or the package the test says so and passes, unless CI is set.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::smpp::{PASSWORD, SYSTEM_ID};
use crate::support::eventually;
use crate::support::server::Postern;

struct NodeSmsc {
    child: Child,
    port: u16,
    events: Arc<Mutex<Vec<Value>>>,
}

impl Drop for NodeSmsc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NodeSmsc {
    /// `None` (with a note) where node or the package is missing outside CI.
    async fn start() -> Option<Self> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/smsc-node");
        let installed = dir.join("node_modules/smpp").is_dir();
        let node = Command::new("node").arg("--version").output().is_ok();
        if !(installed && node) {
            let why = "node or tests/smsc-node/node_modules missing (npm ci in tests/smsc-node)";
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipped: {why}");
            return None;
        }
        let mut child = Command::new("node")
            .arg("smsc.js")
            .current_dir(&dir)
            .env("SMSC_SYSTEM_ID", SYSTEM_ID)
            .env("SMSC_PASSWORD", PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node smsc.js");
        let events = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let ev = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    ev.lock().unwrap().push(v);
                }
            }
        });
        let mut smsc = Self {
            child,
            port: 0,
            events,
        };
        smsc.port = eventually(Duration::from_secs(20), "node SMSC to listen", || async {
            smsc.find("listening")
                .and_then(|v| v["port"].as_u64())
                .map(|p| p as u16)
        })
        .await;
        Some(smsc)
    }

    fn all(&self, event: &str) -> Vec<Value> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|v| v["event"] == event)
            .cloned()
            .collect()
    }

    fn find(&self, event: &str) -> Option<Value> {
        self.all(event).pop()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn smpp_against_the_npm_smpp_server_texts_receipts_and_unbind() {
    let Some(smsc) = NodeSmsc::start().await else {
        return;
    };
    let config = format!(
        "[[sms_gateway]]\nname = \"smpp\"\nkind = \"smpp\"\nsmsc_host = \"127.0.0.1\"\n\
         smsc_port = {}\nsystem_id = \"{SYSTEM_ID}\"\npassword = \"{PASSWORD}\"\n\
         s_addr = \"Postern\"\ns_addr_ton = 5\n",
        smsc.port
    );
    let mut p = Postern::start(&config).await;
    let (s, v) = p.test_send("smpp", "+491701234567").await;
    assert_eq!(s, 200, "{v}");
    let msg = eventually(Duration::from_secs(10), "the message", || async {
        smsc.find("message")
    })
    .await;
    assert_eq!(msg["to"], "491701234567");
    assert_eq!(msg["data_coding"], 0);
    assert_eq!(msg["registered_delivery"], 1);
    let text = msg["text"].as_str().unwrap();
    // A German number gets the German text (the locale chain), GSM-7 all the same.
    let re = regex::Regex::new(r"^Ihr Bestätigungscode lautet \d{6}\. Er ist 10 Minuten gültig\.$");
    assert!(re.unwrap().is_match(text), "{msg}");
    assert_eq!(v["delivery"]["providerId"], msg["message_id"]);
    assert_eq!(smsc.find("bound").unwrap()["interface_version"], 0x34);
    let id = v["delivery"]["id"].as_str().unwrap().to_string();
    let d = eventually(Duration::from_secs(10), "the handset state", || async {
        let d = p.delivery(&id).await;
        d.get("handset").is_some().then_some(d)
    })
    .await;
    assert_eq!(d["handset"]["state"], "delivered", "{d}");
    // The SMSC logs the answer to its receipt when the response reaches it,
    // which can be after postern has already stored the handset state.
    let answered = eventually(Duration::from_secs(10), "the receipt's answer", || async {
        smsc.find("receipt_answered")
    })
    .await;
    assert_eq!(answered["status"], 0);
    assert!(p.terminate(Duration::from_secs(15)));
    eventually(Duration::from_secs(5), "unbind", || async {
        smsc.find("unbind")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn smpp_ucs2_and_long_texts_decode_intact_in_the_npm_smpp_server() {
    use postern::delivery::sms_gateway::SmsGatewayConfig;
    use postern::delivery::{Message, OutcomeClass, Sender};

    let Some(smsc) = NodeSmsc::start().await else {
        return;
    };
    let g = SmsGatewayConfig {
        name: "smpp".into(),
        kind: "smpp".into(),
        smsc_host: "127.0.0.1".into(),
        smsc_port: smsc.port,
        system_id: SYSTEM_ID.into(),
        password: Some(postern::secret::Secret::new(PASSWORD)),
        ..Default::default()
    };
    let s = postern::delivery::sms_smpp::file_sender(&g, "sms_gateway[0]").unwrap();
    let texts = [
        (
            "Code 123456 für Jörg: {gültig} [ok] €5 @home_".to_string(),
            0,
            1,
        ),
        ("Ваш код: 123456. Он действует 10 минут.".to_string(), 8, 1),
        ("Your verification code is 123456. ".repeat(6), 0, 2),
        ("验证码 123456，10 分钟内有效。".repeat(4), 8, 2),
    ];
    for (i, (text, coding, parts)) in texts.iter().enumerate() {
        let m = Message {
            send_to: format!("+4917000{i}"),
            code: "123456".into(),
            ttl_seconds: 600,
            text: text.clone(),
            username: "alice".into(),
            user_agent: None,
            remote_address: None,
            locale: None,
            email: None,
        };
        let o = s.send(&m).await;
        assert_eq!(o.class, OutcomeClass::Delivered, "{}", o.detail);
        let msg = eventually(Duration::from_secs(10), "the message", || async {
            smsc.all("message").get(i).cloned()
        })
        .await;
        assert_eq!(msg["text"].as_str(), Some(text.as_str()), "{msg}");
        assert_eq!(
            (msg["data_coding"].as_u64(), msg["parts"].as_u64()),
            (Some(*coding), Some(*parts))
        );
    }
    s.shutdown().await;
}
