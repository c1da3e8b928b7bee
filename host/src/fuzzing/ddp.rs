//! DDP frames: any text parses to a message or a refusal without panicking,
//! every answer postern writes for it is JSON, and no answer is much larger
//! than the frame it answers (the refusal echoes the frame, so an
//! amplification would be a memory and bandwidth lever).

use serde_json::Value;

use crate::api::realtime::ddp::{self, Incoming, MeteorError};
use crate::api::realtime::params;

/// The whole input is one text frame.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let answer = match ddp::parse(&text) {
        Err(refused) => ddp::refused(refused),
        Ok(Incoming::Connect { version }) => {
            let _ = ddp::version_supported(&version);
            ddp::connected("s")
        }
        Ok(Incoming::Ping { id }) => ddp::pong(id),
        Ok(Incoming::Pong) => ddp::ping(),
        Ok(Incoming::Sub { id, name }) => {
            let name = name.as_str().unwrap_or_default().to_string();
            ddp::nosub(id, Some(&MeteorError::numeric(404, name)))
        }
        Ok(Incoming::Unsub { id }) => ddp::nosub(id, None),
        Ok(Incoming::Method { id, method, params }) => method_answer(&id, &method, params),
    };
    let bound = 8 * text.len() + 1024;
    assert!(
        answer.len() <= bound,
        "{} bytes answer {} bytes",
        answer.len(),
        text.len()
    );
    let v: Value = serde_json::from_str(&answer).expect("answers are JSON");
    assert!(v.get("msg").and_then(Value::as_str).is_some(), "{answer}");
}

/// The parameter forms of the methods, answered as `result` frames.
fn method_answer(id: &str, method: &str, mut params: Vec<Value>) -> String {
    let _ = params::take_two_factor(&mut params);
    let _ = params::str_param(&params, 0);
    let r = match method {
        "login" => match params::login_request(params) {
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        },
        _ => Ok(params.into_iter().next()),
    };
    ddp::result(id, &r)
}
