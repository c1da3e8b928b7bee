//! Constraints the handlers enforce that utoipa's derives cannot state:
//! the name rule on path parameters, enums whose values live in code, and
//! "this field or that one" bodies (Rocket.Chat's `userId | username`).
//! Applied to the JSON document, so the rule each constraint comes from is
//! named here once: `NAME_PATTERN`, `ChannelKind::ALL`, `MessageKind::ALL`.

use serde_json::{Value, json};

use crate::delivery::kind::ChannelKind;
use crate::domain::{NAME_PATTERN, RESERVED_CHANNEL_NAMES};
use crate::messages::Kind as MessageKind;

pub(super) fn apply(doc: &mut Value) {
    name_parameters(doc);
    optional_bodies(doc, "/logout");
    query_enum(doc, "/plugins/{name}", "accept", &["permissions"]);
    body_schemas(doc);
}

fn body_schemas(doc: &mut Value) {
    let Some(schemas) = doc.pointer_mut("/components/schemas") else {
        return;
    };
    let kinds: Vec<&str> = ChannelKind::ALL.iter().map(|k| k.as_str()).collect();
    set_property(
        schemas,
        "PutChannel",
        "kind",
        json!({ "type": "string", "enum": kinds }),
    );
    let message_kinds: Vec<&str> = MessageKind::ALL.iter().map(|k| k.as_str()).collect();
    set_property(
        schemas,
        "PreviewRequest",
        "kind",
        json!({ "type": ["string", "null"], "enum": message_kinds.iter().map(|k| json!(k)).chain([Value::Null]).collect::<Vec<_>>() }),
    );
    set_property(schemas, "CreateTenant", "name", tenant_name());
    set_property(schemas, "SendEmailCode", "emailOrUsername", non_empty());
    require(schemas, "SendEmailCode", &["emailOrUsername"]);
    for body in ["UserRefBody", "Unlock", "SetTwoFactor"] {
        one_of_fields(schemas, body, &[&["userId"], &["username"]]);
    }
    one_of_fields(
        schemas,
        "LoginBody",
        &[&["user"], &["username"], &["email"]],
    );
    require(schemas, "LoginBody", &["password"]);
    let password = json!({ "$ref": "#/components/schemas/PasswordField" });
    set_property(schemas, "LoginBody", "password", password);
    one_of_fields(schemas, "Start", &[&["username"], &["to", "channel"]]);
    // A password, plain, is never empty.
    if let Some(plain) = schemas.pointer_mut("/PasswordField/oneOf/0") {
        plain["minLength"] = json!(1);
    }
    // Rocket.Chat's digest form: only SHA-256, in any case.
    if let Some(algorithm) = schemas.pointer_mut("/PasswordField/oneOf/1/properties/algorithm") {
        *algorithm = json!({ "type": "string", "pattern": "^[sS][hH][aA]-256$" });
    }
    // A method is `email`, `totp`, `password` or a channel: all names.
    let method = json!({ "type": ["string", "null"], "pattern": NAME_PATTERN });
    set_property(schemas, "Unlock", "method", method.clone());
    set_property(schemas, "SetTwoFactor", "method", method);
}

/// A query parameter that takes only `values`.
fn query_enum(doc: &mut Value, suffix: &str, name: &str, values: &[&str]) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (_, item) in paths.iter_mut().filter(|(p, _)| p.ends_with(suffix)) {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            let params = op.get_mut("parameters").and_then(Value::as_array_mut);
            for p in params.into_iter().flatten() {
                if p["in"] == "query" && p["name"] == name {
                    p["schema"] = json!({ "type": "string", "enum": values });
                }
            }
        }
    }
}

fn tenant_name() -> Value {
    json!({ "type": "string", "pattern": NAME_PATTERN })
}

fn channel_name() -> Value {
    json!({ "type": "string", "pattern": NAME_PATTERN, "not": { "enum": RESERVED_CHANNEL_NAMES } })
}

fn non_empty() -> Value {
    json!({ "type": "string", "minLength": 1 })
}

/// `{tenant}` and `{name}` path parameters follow the name rule; `{name}`
/// is a tenant under `/admin`, else a channel, plugin or key (channel names).
fn name_parameters(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
                continue;
            };
            for p in params.iter_mut().filter(|p| p["in"] == "path") {
                let schema = match p["name"].as_str() {
                    Some("tenant") => tenant_name(),
                    Some("name") if path.starts_with("/admin/") => tenant_name(),
                    Some("name") => channel_name(),
                    _ => continue,
                };
                p["schema"] = schema;
            }
        }
    }
}

/// Bodies a route reads only when one is sent (`logout`: Rocket.Chat
/// clients send none).
fn optional_bodies(doc: &mut Value, suffix: &str) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (_, item) in paths.iter_mut().filter(|(p, _)| p.ends_with(suffix)) {
        let body = item
            .get_mut("post")
            .and_then(|op| op.get_mut("requestBody"))
            .and_then(Value::as_object_mut);
        if let Some(body) = body {
            body.insert("required".into(), Value::Bool(false));
        }
    }
}

fn set_property(schemas: &mut Value, schema: &str, field: &str, value: Value) {
    let props = schemas
        .get_mut(schema)
        .and_then(|s| s.get_mut("properties"))
        .and_then(Value::as_object_mut);
    if let Some(props) = props {
        props.insert(field.to_string(), value);
    }
}

fn require(schemas: &mut Value, schema: &str, fields: &[&str]) {
    if let Some(obj) = schemas.get_mut(schema).and_then(Value::as_object_mut) {
        let required = obj.entry("required").or_insert_with(|| json!([]));
        if let Some(list) = required.as_array_mut() {
            list.extend(fields.iter().map(|f| json!(f)));
        }
    }
}

/// At least one group of fields present and non-empty (the handlers count
/// an empty string as missing).
fn one_of_fields(schemas: &mut Value, schema: &str, groups: &[&[&str]]) {
    let alternatives: Vec<Value> = groups
        .iter()
        .map(|group| {
            let props: serde_json::Map<String, Value> =
                group.iter().map(|f| (f.to_string(), non_empty())).collect();
            json!({ "required": group, "properties": props })
        })
        .collect();
    if let Some(obj) = schemas.get_mut(schema).and_then(Value::as_object_mut) {
        obj.insert("anyOf".into(), Value::Array(alternatives));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refined_schema_exists_in_the_document() {
        // A renamed body type would silently drop its constraints.
        let doc = super::super::document();
        for name in [
            "PutChannel",
            "PreviewRequest",
            "CreateTenant",
            "SendEmailCode",
            "UserRefBody",
            "Unlock",
            "SetTwoFactor",
            "LoginBody",
            "Start",
        ] {
            assert!(doc["components"]["schemas"][name].is_object(), "{name}");
        }
        let kind = &doc["components"]["schemas"]["PutChannel"]["properties"]["kind"];
        assert!(
            kind["enum"]
                .as_array()
                .is_some_and(|k| k.contains(&json!("plugin")))
        );
    }

    #[test]
    fn the_name_pattern_agrees_with_the_parser() {
        let re = regex::Regex::new(NAME_PATTERN).unwrap();
        for s in [
            "a",
            "default",
            "a-b_c9",
            "9x",
            &"a".repeat(64),
            "",
            "-a",
            "A",
            "a b",
            &"a".repeat(65),
            "é",
        ] {
            assert_eq!(
                re.is_match(s),
                crate::domain::TenantName::parse(s).is_ok(),
                "{s:?}"
            );
        }
    }
}
