//! The OpenAPI document: every route's own annotation, then the answers
//! the shared extractors give on every route that uses them (one place, so
//! no route can forget them), then the `/api/v1` copies of tenant routes,
//! then (`refine`) the constraints the handlers enforce.

use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

mod refine;

/// The document `/openapi.json` serves: the annotations, refined by the
/// constraints the handlers enforce that the annotations cannot state.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    refine::apply(&mut doc);
    doc
}

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document")))]
pub async fn openapi() -> axum::Json<serde_json::Value> {
    axum::Json(document())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "postern", description = "Delivery and checking of one-time 2FA codes. Errors: {success:false, error, errorType, details}."),
    paths(
        super::ops::healthz, super::ops::readyz, super::ops::metrics, openapi,
        super::deliveries::list, super::deliveries::get_one,
        super::deliveries::test_channel,
        super::channels::list, super::channels::get_one, super::channels::put, super::channels::delete,
        super::plugins::put, super::plugins::list, super::plugins::get_one, super::plugins::delete,
        super::plugin_rollout::promote, super::plugin_rollout::rollback,
        super::plugin_keys::put, super::plugin_keys::list, super::plugin_keys::delete,
        super::plugin_keys::get_policy, super::plugin_keys::put_policy,
        super::realtime::websocket,
        super::admin::create, super::admin::list, super::admin::get_one, super::admin::delete,
        super::session::login, super::session::logout, super::session::me,
        super::users::users_create, super::users::users_info, super::users::users_delete,
        super::users::users_set_two_factor, super::session::update_own_basic_info,
        super::two_factor::send_email_code, super::two_factor::enable_email, super::two_factor::disable_email,
        super::two_factor::disable_all, super::two_factor::enable_totp, super::two_factor::validate_temp_token,
        super::two_factor::regenerate_codes, super::two_factor::check_codes_remaining, super::two_factor::disable_totp,
        super::two_factor::enable_channel, super::two_factor::confirm_channel, super::audit::audit,
        super::verify::start, super::verify::check, super::verify::get_one, super::verify::cancel,
        super::abuse::unlock, super::abuse::unlock_destination, super::abuse::list, super::abuse::unblock,
        super::templates::preview,
    ),
    components(schemas(
        crate::store::DeliveryRecord, crate::store::AttemptRecord, crate::store::HandsetRecord,
        crate::store::SmsFacts, super::ops::ChannelHealth,
        super::deliveries::TestRequest, super::deliveries::DeliveryResponse,
        super::deliveries::DeliveryList, super::error::ErrorBody,
    )),
    tags((name = "messages", description = "Messages and languages. Every channel renders its messages with MiniJinja \
        templates: `text` (SMS, chat, plugins), email `subject`, `body` and `html`. Built-in in en, de, fr, es, it, pt, nl, pl, \
        sv, ru, ja, zh; a channel's `templates` ({defaultLocale?, text?, subject?, body?, html?: {<BCP 47>: template}, webotp?}) \
        override them per locale. Variables: code, ttl_seconds, ttl, username, app_name, base_url, domain, user_agent, \
        remote_address, locale. The locale is the user's `language` (or a Verify `locale`), else Accept-Language, else the \
        country of a +E.164 send-to, else the channel's defaultLocale, else en; de-AT falls back to de. Records show `locale` \
        and, for texts, `sms {encoding, segments}`. A bad template is 400 error-invalid-params with details.field, line, column.")),
    modifiers(&BearerAuth, &ExtractorAnswers, &DefaultTenantPaths),
)]
pub struct ApiDoc;

/// Tenant routes are documented once under `/t/{tenant}/api/v1`; this adds
/// the same operations under `/api/v1` (the `default` tenant).
struct DefaultTenantPaths;

impl utoipa::Modify for DefaultTenantPaths {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let tenant_paths: Vec<(String, utoipa::openapi::PathItem)> = api
            .paths
            .paths
            .iter()
            .filter_map(|(p, item)| {
                p.strip_prefix("/t/{tenant}")
                    .map(|rest| (rest.to_string(), item.clone()))
            })
            .collect();
        for (path, mut item) in tenant_paths {
            for op in [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                if let Some(params) = op.parameters.as_mut() {
                    params.retain(|p| p.name != "tenant");
                }
                op.operation_id = op.operation_id.take().map(|id| format!("{id}_default"));
            }
            api.paths.paths.insert(path, item);
        }
    }
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // A user session is two headers from `login`: X-User-Id and X-Auth-Token.
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "X-Auth-Token",
                    "The authToken from login, together with X-User-Id: the userId",
                ),
            )),
        );
    }
}

/// What the extractors in `extract/` answer, added to each operation that
/// uses them (a route's own annotation wins where it says more):
/// credentials → 401; a `{tenant}` → 404 unknown tenant; another path
/// parameter → 404 (nothing by that name); query parameters → 400; a JSON
/// body → 400 (syntax, a field), 413 (over the body limit), 415 (not JSON).
struct ExtractorAnswers;

impl utoipa::Modify for ExtractorAnswers {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for (path, item) in api.paths.paths.iter_mut() {
            for op in [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                for (status, why) in extractor_answers(path, op) {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error_response(why));
                }
            }
        }
    }
}

fn extractor_answers(path: &str, op: &Operation) -> Vec<(u16, &'static str)> {
    let params = op.parameters.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
        out.push((401, "Missing or wrong credentials"));
    }
    if path.contains("{tenant}") {
        out.push((404, "No such tenant, or nothing by that name"));
    } else if params.iter().any(|p| p.parameter_in == ParameterIn::Path) {
        out.push((404, "Nothing by that name"));
    }
    if params
        .iter()
        .any(|p| p.parameter_in == ParameterIn::Path && p.name != "tenant")
    {
        out.push((400, "A name that breaks the name rule: details.field"));
    }
    if params.iter().any(|p| p.parameter_in == ParameterIn::Query) {
        out.push((400, "A query parameter out of its range: details.field"));
    }
    if op.request_body.is_some() {
        out.push((
            400,
            "Malformed JSON (error-invalid-json) or a wrong field (details.field)",
        ));
        out.push((413, "The body is over the limit: details.maxBytes"));
        out.push((415, "The body is not of the documented content type"));
    }
    out
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}
