//! The DDP wire format: the client messages postern understands, the server
//! messages it writes, and Meteor's error shape. Pure functions, no I/O.

use serde_json::{Map, Value, json};

/// DDP versions a client may propose; `1` is the current one.
const VERSIONS: [&str; 3] = ["1", "pre2", "pre1"];

/// A client message postern acts on.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Connect {
        version: String,
    },
    Ping {
        id: Option<Value>,
    },
    Pong,
    Method {
        id: String,
        method: String,
        params: Vec<Value>,
    },
    Sub {
        id: Value,
        name: Value,
    },
    Unsub {
        id: Value,
    },
}

/// Why a frame is not a message postern acts on; each becomes a DDP
/// `error` message and the connection stays open.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// Not JSON.
    Parse,
    /// Not an object with a `msg`, or a `msg` postern does not know.
    BadRequest(Value),
    /// A `method` without a string `id` and `method`, or non-array `params`.
    MalformedMethod(Value),
}

pub fn parse(text: &str) -> Result<Incoming, Refused> {
    let v: Value = serde_json::from_str(text).map_err(|_| Refused::Parse)?;
    let Some(obj) = v.as_object() else {
        return Err(Refused::BadRequest(v));
    };
    let field = |k: &str| obj.get(k).cloned();
    match obj.get("msg").and_then(Value::as_str) {
        Some("connect") => Ok(Incoming::Connect {
            version: obj
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        }),
        Some("ping") => Ok(Incoming::Ping { id: field("id") }),
        Some("pong") => Ok(Incoming::Pong),
        Some("method") => {
            let id = obj.get("id").and_then(Value::as_str);
            let method = obj.get("method").and_then(Value::as_str);
            let params = match obj.get("params") {
                None | Some(Value::Null) => Some(Vec::new()),
                Some(Value::Array(a)) => Some(a.clone()),
                Some(_) => None,
            };
            match (id, method, params) {
                (Some(id), Some(method), Some(params)) => Ok(Incoming::Method {
                    id: id.to_string(),
                    method: method.to_string(),
                    params,
                }),
                _ => Err(Refused::MalformedMethod(v)),
            }
        }
        Some("sub") => Ok(Incoming::Sub {
            id: field("id").unwrap_or(Value::Null),
            name: field("name").unwrap_or(Value::Null),
        }),
        Some("unsub") => Ok(Incoming::Unsub {
            id: field("id").unwrap_or(Value::Null),
        }),
        _ => Err(Refused::BadRequest(v)),
    }
}

pub fn version_supported(v: &str) -> bool {
    VERSIONS.contains(&v)
}

/// `Meteor.Error` as it travels in a `result`:
/// `{isClientSafe, error, reason, details?, message: "<reason> [<error>]", errorType}`.
#[derive(Debug, Clone, PartialEq)]
pub struct MeteorError {
    /// A string id (`totp-required`) or, for Meteor's own errors, a number (404).
    pub error: Value,
    pub reason: String,
    pub details: Option<Value>,
}

impl MeteorError {
    pub fn new(error: &str, reason: impl Into<String>) -> Self {
        Self {
            error: Value::String(error.to_string()),
            reason: reason.into(),
            details: None,
        }
    }

    /// Meteor's numeric errors (`404` method not found, `403` login refused).
    pub fn numeric(code: u16, reason: impl Into<String>) -> Self {
        Self {
            error: Value::from(code),
            reason: reason.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn to_json(&self) -> Value {
        let id = match &self.error {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut m = Map::new();
        m.insert("isClientSafe".into(), Value::Bool(true));
        m.insert("error".into(), self.error.clone());
        m.insert("reason".into(), Value::String(self.reason.clone()));
        if let Some(d) = &self.details {
            m.insert("details".into(), d.clone());
        }
        m.insert(
            "message".into(),
            Value::String(format!("{} [{id}]", self.reason)),
        );
        m.insert("errorType".into(), Value::String("Meteor.Error".into()));
        Value::Object(m)
    }
}

/// What a method answers: a value, nothing (`undefined`), or an error.
pub type MethodResult = Result<Option<Value>, MeteorError>;

pub fn connected(session: &str) -> String {
    json!({ "msg": "connected", "session": session }).to_string()
}

pub fn failed() -> String {
    json!({ "msg": "failed", "version": VERSIONS[0] }).to_string()
}

pub fn pong(id: Option<Value>) -> String {
    match id {
        Some(id) => json!({ "msg": "pong", "id": id }),
        None => json!({ "msg": "pong" }),
    }
    .to_string()
}

/// The server's heartbeat ping; Meteor sends it without an `id`.
pub fn ping() -> String {
    json!({ "msg": "ping" }).to_string()
}

/// A document published to the client (`fields` without `_id`).
pub fn added(collection: &str, id: &str, fields: Value) -> String {
    json!({ "msg": "added", "collection": collection, "id": id, "fields": fields }).to_string()
}

pub fn removed(collection: &str, id: &str) -> String {
    json!({ "msg": "removed", "collection": collection, "id": id }).to_string()
}

pub fn result(id: &str, r: &MethodResult) -> String {
    match r {
        Ok(Some(v)) => json!({ "msg": "result", "id": id, "result": v }),
        Ok(None) => json!({ "msg": "result", "id": id }),
        Err(e) => json!({ "msg": "result", "id": id, "error": e.to_json() }),
    }
    .to_string()
}

/// Meteor clients run a method's callback once both `result` and
/// `updated` arrived; postern writes no data, so `updated` follows at once.
pub fn updated(id: &str) -> String {
    json!({ "msg": "updated", "methods": [id] }).to_string()
}

pub fn nosub(id: Value, error: Option<&MeteorError>) -> String {
    match error {
        Some(e) => json!({ "msg": "nosub", "id": id, "error": e.to_json() }),
        None => json!({ "msg": "nosub", "id": id }),
    }
    .to_string()
}

/// A protocol-level `error` message (not a method error).
pub fn error(reason: &str, offending: Option<Value>) -> String {
    match offending {
        Some(m) => json!({ "msg": "error", "reason": reason, "offendingMessage": m }),
        None => json!({ "msg": "error", "reason": reason }),
    }
    .to_string()
}

pub fn refused(r: Refused) -> String {
    match r {
        Refused::Parse => error("Parse error", None),
        Refused::BadRequest(m) => error("Bad request", Some(m)),
        Refused::MalformedMethod(m) => error("Malformed method invocation", Some(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_required_has_rocket_chat_shape() {
        let e = MeteorError::new("totp-required", "TOTP Required").with_details(json!({
            "method": "email", "codeGenerated": true, "codeCount": 1,
            "codeExpires": ["2030-01-01T00:00:00.000Z"], "availableMethods": ["email"],
        }));
        let v: Value = serde_json::from_str(&result("7", &Err(e))).unwrap();
        assert_eq!(
            v,
            json!({ "msg": "result", "id": "7", "error": {
                "isClientSafe": true, "error": "totp-required", "reason": "TOTP Required",
                "details": { "method": "email", "codeGenerated": true, "codeCount": 1,
                    "codeExpires": ["2030-01-01T00:00:00.000Z"], "availableMethods": ["email"] },
                "message": "TOTP Required [totp-required]", "errorType": "Meteor.Error" } })
        );
    }

    #[test]
    fn numeric_errors_print_the_number() {
        let e = MeteorError::numeric(404, "Method 'nope' not found").to_json();
        assert_eq!(e["error"], json!(404));
        assert_eq!(e["message"], "Method 'nope' not found [404]");
        assert!(e.get("details").is_none());
    }

    #[test]
    fn parses_the_messages_postern_knows() {
        assert_eq!(
            parse(r#"{"msg":"connect","version":"1","support":["1"]}"#),
            Ok(Incoming::Connect {
                version: "1".into()
            })
        );
        assert_eq!(
            parse(r#"{"msg":"ping","id":"a"}"#),
            Ok(Incoming::Ping {
                id: Some(json!("a"))
            })
        );
        assert_eq!(
            parse(r#"{"msg":"method","id":"1","method":"login"}"#),
            Ok(Incoming::Method {
                id: "1".into(),
                method: "login".into(),
                params: vec![]
            })
        );
    }

    #[test]
    fn refuses_what_is_not_ddp() {
        assert_eq!(parse("{nope"), Err(Refused::Parse));
        assert_eq!(parse("[1]"), Err(Refused::BadRequest(json!([1]))));
        assert_eq!(
            parse(r#"{"msg":"teleport"}"#),
            Err(Refused::BadRequest(json!({ "msg": "teleport" })))
        );
        assert!(matches!(
            parse(r#"{"msg":"method","id":1,"method":"login"}"#),
            Err(Refused::MalformedMethod(_))
        ));
        assert!(matches!(
            parse(r#"{"msg":"method","id":"1","method":"login","params":{}}"#),
            Err(Refused::MalformedMethod(_))
        ));
        let deep = "[".repeat(10_000);
        assert_eq!(parse(&deep), Err(Refused::Parse));
    }

    #[test]
    fn result_without_value_is_undefined() {
        let v: Value = serde_json::from_str(&result("x", &Ok(None))).unwrap();
        assert_eq!(v, json!({ "msg": "result", "id": "x" }));
        assert_eq!(
            serde_json::from_str::<Value>(&updated("x")).unwrap(),
            json!({ "msg": "updated", "methods": ["x"] })
        );
    }
}
