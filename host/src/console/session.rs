//! Who is looking: sign-in with a key, the session cookie, CSRF tokens,
//! and the cross-site checks every form post passes.
//!
//! The cookie holds a random token; the store keeps only its SHA-256
//! (`console_sessions`), so sign-out ends the session on every host. A
//! form's CSRF token is the server key's MAC of the session token (of a
//! short-lived pre-session cookie on the sign-in form): nothing to store,
//! and a page from another origin can neither read nor guess it.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use cookie::{Cookie, SameSite};
use serde::Deserialize;
use serde_json::json;

use super::view::{ConsoleError, render};
use crate::api::AppState;
use crate::api::extract::{ClientInfo, KeyScope, key_scope};
use crate::crypto::{digest_eq, random_token, sha256_hex};
use crate::domain::TenantName;

/// The session cookie (HttpOnly, SameSite=Strict, Path=/console; Secure
/// when `server.base_url` is https).
pub const COOKIE: &str = "postern_console";
/// The sign-in form's pre-session cookie, for its CSRF token.
const SIGN_IN_COOKIE: &str = "postern_console_signin";
const SESSION_MS: i64 = 8 * 3_600_000;

/// A signed-in viewer: the operator or one tenant.
pub struct Viewer {
    pub scope: KeyScope,
    /// The token every form of this session must carry.
    pub csrf: String,
    token_hash: String,
}

impl Viewer {
    pub fn is_operator(&self) -> bool {
        self.scope == KeyScope::Operator
    }

    /// The form token must match; otherwise the post is refused.
    pub fn check_csrf(&self, presented: &str) -> Result<(), ConsoleError> {
        if digest_eq(presented, &self.csrf) {
            Ok(())
        } else {
            Err(ConsoleError::forbidden(
                "The form expired or came from another site; reload the page.",
            ))
        }
    }
}

fn csrf_for(state: &AppState, purpose: &str, token: &str) -> String {
    hex::encode(
        state
            .keys
            .mac(format!("console-{purpose}:{token}").as_bytes()),
    )
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        let token = cookie_value(&parts.headers, COOKIE).ok_or(ConsoleError::SignIn)?;
        let token_hash = sha256_hex(token.as_bytes());
        let row = state
            .store
            .console_session(&token_hash, state.clock.now_ms())
            .await?
            .ok_or(ConsoleError::SignIn)?;
        let scope = match row.tenant {
            None => KeyScope::Operator,
            Some(t) => {
                let tenant = TenantName::parse(&t).map_err(|_| ConsoleError::SignIn)?;
                // A deleted tenant's sessions end with it.
                if state
                    .store
                    .tenant_key_hash(tenant.as_str())
                    .await?
                    .is_none()
                {
                    return Err(ConsoleError::SignIn);
                }
                KeyScope::Tenant(tenant)
            }
        };
        Ok(Self {
            scope,
            csrf: csrf_for(state, "csrf", &token),
            token_hash,
        })
    }
}

/// Refuses a post another site made the browser send. A browser's
/// `Sec-Fetch-Site` decides when present (only `same-origin` passes: a page
/// on another port of this host is `same-site` and still another origin);
/// otherwise an `Origin` must name this host (`null` does not). A client
/// that sends neither is not a browser another site can steer; the CSRF
/// token still has to match, and SameSite=Strict keeps the cookie off
/// cross-site posts.
pub fn same_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
    let refused = || ConsoleError::forbidden("Cross-site form posts are refused.");
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" => Ok(()),
            _ => Err(refused()),
        };
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok());
    let authority = origin.as_ref().map(|u| match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    });
    match (authority, host) {
        (Some(a), Some(h)) if a.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(refused()),
    }
}

/// A form body; a malformed one is a 400 page, never a 500.
pub fn parse_form<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ConsoleError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|_| ConsoleError::bad_request("The form was incomplete or malformed."))
}

fn set_cookie(state: &AppState, name: &str, value: String, max_age_s: i64) -> HeaderValue {
    let secure = state
        .config
        .server
        .base_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    let c = Cookie::build((name, value))
        .path("/console")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age_s))
        .build();
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `GET /console/sign-in`: the form, with a fresh pre-session cookie.
pub async fn sign_in_form(State(state): State<AppState>) -> Result<Response, ConsoleError> {
    sign_in_page(&state, StatusCode::OK, None)
}

fn sign_in_page(
    state: &AppState,
    status: StatusCode,
    error: Option<&str>,
) -> Result<Response, ConsoleError> {
    let pre = random_token("");
    let html = render(
        "sign_in.html",
        json!({ "csrf": csrf_for(state, "signin", &pre), "error": error }),
    )?;
    let cookie = set_cookie(state, SIGN_IN_COOKIE, pre, 600);
    Ok((status, [(header::SET_COOKIE, cookie)], html).into_response())
}

#[derive(Deserialize)]
struct SignInForm {
    key: String,
    csrf: String,
}

/// `POST /console/sign-in`: the admin token or a tenant key; rate limited
/// per address like logins (`limits.logins_per_ip_per_minute`).
pub async fn sign_in(
    State(state): State<AppState>,
    ClientInfo(caller): ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    same_origin(&headers)?;
    let form: SignInForm = parse_form(&body)?;
    let pre = cookie_value(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if pre.is_empty() || !digest_eq(&form.csrf, &csrf_for(&state, "signin", &pre)) {
        return Err(ConsoleError::forbidden(
            "The form expired or came from another site; reload the page.",
        ));
    }
    state
        .twofa
        .limit(
            &format!("console:signin:ip:{}", caller.ip),
            60_000,
            state.config.limits.logins_per_ip_per_minute,
        )
        .await?;
    let Some(scope) = key_scope(&state, form.key.trim()).await? else {
        return sign_in_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("That key is not valid."),
        );
    };
    let token = random_token("pcs_");
    let now = state.clock.now_ms();
    let tenant = match &scope {
        KeyScope::Operator => None,
        KeyScope::Tenant(t) => Some(t.as_str()),
    };
    let hash = sha256_hex(token.as_bytes());
    state
        .store
        .create_console_session(&hash, tenant, now, now + SESSION_MS)
        .await?;
    if let Some(t) = tenant {
        let ip = caller.ip.to_string();
        state
            .store
            .audit(t, "console", "console.sign-in", None, Some(&ip), now)
            .await?;
    }
    let mut resp = Redirect::to("/console").into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&state, COOKIE, token, SESSION_MS / 1000),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&state, SIGN_IN_COOKIE, String::new(), 0),
    );
    Ok(resp)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

/// `POST /console/sign-out`: ends the session here and on every host.
pub async fn sign_out(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    same_origin(&headers)?;
    let form: CsrfForm = parse_form(&body)?;
    viewer.check_csrf(&form.csrf)?;
    state
        .store
        .delete_console_session(&viewer.token_hash)
        .await?;
    let mut resp = Redirect::to("/console/sign-in").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, COOKIE, String::new(), 0),
    );
    Ok(resp)
}
