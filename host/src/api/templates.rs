//! `POST /templates/preview {channel, locale?, kind?}`: a channel's message
//! rendered with a sample code, in the locale the chain picks for `locale`
//! (falling back as a real send would), without sending anything.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ClientInfo, TenantAccess};
use crate::messages::{Kind, Preferences, Vars, sms};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// A channel of the tenant (file or API).
    channel: String,
    /// BCP 47; the channel's default when omitted or without a template.
    locale: Option<String>,
    /// `text` (default), `subject`, `body` or `html`.
    kind: Option<String>,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/templates/preview", tag = "messages",
    params(("tenant" = String, Path, description = "Tenant name; /api/v1/… is the `default` tenant")),
    request_body = PreviewRequest, security(("bearer" = [])),
    responses((status = 200, description = "{success, preview:{channel, kind, locale, text, sms?:{encoding, segments}}}: rendered with a sample code, nothing sent"),
        (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody, description = "No such channel")))]
pub async fn preview(
    State(state): State<AppState>,
    access: TenantAccess,
    ClientInfo(caller): ClientInfo,
    ApiJson(b): ApiJson<PreviewRequest>,
) -> Result<Json<Value>, ApiError> {
    let kind = Kind::parse(b.kind.as_deref().unwrap_or("text"))
        .map_err(|m| ApiError::invalid_params("kind", m))?;
    if let Some(l) = &b.locale {
        crate::messages::Locale::parse(l).map_err(|m| ApiError::invalid_params("locale", m))?;
    }
    let channel = state
        .registry
        .get(&access.tenant, &b.channel)
        .ok_or_else(|| ApiError::not_found("No such channel"))?;
    let locale = channel
        .messages
        .choose(&Preferences::chain(b.locale.as_deref(), None, ""));
    let code: String = "1234567890"
        .chars()
        .take(state.config.limits.code_length as usize)
        .collect();
    let ip = caller.ip.to_string();
    let vars = Vars {
        code: &code,
        ttl_seconds: state.config.api.two_fa_token_ttl_seconds,
        username: "jane.doe",
        user_agent: caller.user_agent.as_deref(),
        remote_address: Some(&ip),
    };
    let rendered = match kind {
        Kind::Text => channel.messages.text(&locale, &vars),
        other => channel.messages.render(other, &locale, &vars),
    }
    .map_err(|e| ApiError::invalid_params(&e.field, e.to_string()))?;
    let mut preview = json!({
        "channel": channel.name,
        "kind": kind.as_str(),
        "locale": locale.as_str(),
        "text": rendered,
    });
    if kind == Kind::Text {
        let l = sms::length(&rendered);
        preview["sms"] = json!({ "encoding": l.encoding, "segments": l.segments });
    }
    Ok(Json(json!({ "success": true, "preview": preview })))
}
