//! The parameters of DDP methods: Rocket.Chat's forms, parsed into what
//! the methods act on, with Meteor's errors for forms it does not know.

use serde_json::{Map, Value};

use super::ddp::MeteorError;
use super::errors::{invalid_params, unrecognized_login};
use crate::domain::Method;
use crate::twofa::{Supplied, password};

/// Pops a trailing `{twoFactorCode, twoFactorMethod}` (both required, as in
/// Rocket.Chat's `twoFactorRequired` wrapper).
pub fn take_two_factor(params: &mut Vec<Value>) -> Option<Supplied> {
    let last = params.last()?.as_object()?;
    let code = last.get("twoFactorCode")?.as_str()?.to_string();
    let method = last.get("twoFactorMethod")?.as_str()?.to_string();
    params.pop();
    Some(Supplied {
        code: Some(code).filter(|c| !c.trim().is_empty()),
        method: Method::parse(&method).ok(),
    })
}

pub fn str_param(params: &[Value], i: usize) -> Option<&str> {
    params
        .get(i)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// What `login` asks for.
pub enum LoginRequest {
    /// `{user, password}`, or `{totp: {login: {user, password}, code}}`.
    Password {
        ident: String,
        digest: String,
        code: Option<String>,
    },
    /// `{resume: token}`.
    Resume(String),
}

pub fn login_request(params: Vec<Value>) -> Result<LoginRequest, MeteorError> {
    let Some(Value::Object(opts)) = params.into_iter().next() else {
        return Err(unrecognized_login());
    };
    if let Some(resume) = opts.get("resume") {
        let token = resume.as_str().unwrap_or_default().to_string();
        return Ok(LoginRequest::Resume(token));
    }
    let (inner, code) = match opts.get("totp") {
        Some(totp) => totp_login(totp)?,
        None => (&opts, None),
    };
    let (Some(user), Some(pass)) = (inner.get("user"), inner.get("password")) else {
        return Err(unrecognized_login());
    };
    Ok(LoginRequest::Password {
        ident: login_ident(user)?.to_string(),
        digest: login_digest(pass)?,
        code,
    })
}

/// `{totp: {login, code}}`: the inner login options and the code.
fn totp_login(totp: &Value) -> Result<(&Map<String, Value>, Option<String>), MeteorError> {
    let code = totp
        .get("code")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid_params("totp.code", "totp.code is required"))?;
    let login = totp
        .get("login")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid_params("totp.login", "totp.login is required"))?;
    Ok((login, Some(code.to_string())))
}

/// `user`: a name, or `{username}` / `{email}`.
fn login_ident(user: &Value) -> Result<&str, MeteorError> {
    match user {
        Value::String(s) => Some(s.as_str()),
        Value::Object(u) => u
            .get("username")
            .or_else(|| u.get("email"))
            .and_then(Value::as_str),
        _ => None,
    }
    .map(str::trim)
    .filter(|s| !s.is_empty())
    .ok_or_else(|| invalid_params("user", "user must be {username} or {email}"))
}

/// `password`: plain, or `{digest, algorithm: "sha-256"}`; the SHA-256 hex digest.
fn login_digest(pass: &Value) -> Result<String, MeteorError> {
    match pass {
        Value::String(plain) => Ok(password::digest(plain)),
        Value::Object(p) => {
            let algorithm = p.get("algorithm").and_then(Value::as_str);
            match (p.get("digest").and_then(Value::as_str), algorithm) {
                (Some(d), Some(a)) if a.eq_ignore_ascii_case("sha-256") => Ok(d.to_string()),
                _ => Err(invalid_params(
                    "password",
                    "password must be {digest, algorithm: \"sha-256\"} or a string",
                )),
            }
        }
        _ => Err(invalid_params("password", "password is required")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn login_forms() {
        let totp = login_request(vec![json!({
            "totp": { "login": { "user": { "username": " ann " }, "password": "pw" }, "code": " 123 " }
        })]);
        let Ok(LoginRequest::Password {
            ident,
            digest,
            code,
        }) = totp
        else {
            panic!("totp form");
        };
        assert_eq!((ident.as_str(), code.as_deref()), ("ann", Some("123")));
        assert_eq!(digest, password::digest("pw"));
        assert!(matches!(
            login_request(vec![json!({ "resume": "tok" })]),
            Ok(LoginRequest::Resume(t)) if t == "tok"
        ));
        let bad = login_request(vec![json!({ "user": "ann" })]).err().unwrap();
        assert_eq!(bad.to_json()["error"], 400);
        let md5 = json!({ "user": "ann", "password": { "digest": "x", "algorithm": "md5" } });
        let bad = login_request(vec![md5]).err().unwrap();
        assert_eq!(bad.to_json()["error"], "error-invalid-params");
    }

    #[test]
    fn the_last_param_form_needs_both_keys() {
        let mut p = vec![
            json!("x"),
            json!({ "twoFactorCode": "123456", "twoFactorMethod": "email" }),
        ];
        let s = take_two_factor(&mut p).unwrap();
        assert_eq!(s.code.as_deref(), Some("123456"));
        assert_eq!(s.method.as_ref().map(Method::as_str), Some("email"));
        assert_eq!(p, vec![json!("x")]);

        let mut only_code = vec![json!({ "twoFactorCode": "123456" })];
        assert!(take_two_factor(&mut only_code).is_none());
        assert_eq!(only_code.len(), 1);
        assert!(take_two_factor(&mut Vec::new()).is_none());
    }
}
