//! The frame every page shares: who is looking, which tenant the page is
//! about (a tenant viewer: its own, always), the CSRF token for its forms.

use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::session::Viewer;
use super::view::{ConsoleError, render};
use crate::api::AppState;
use crate::api::extract::KeyScope;
use crate::domain::TenantName;

/// `?tenant=` on every page: which tenant the operator looks at.
#[derive(Debug, Default, Deserialize)]
pub struct TenantQuery {
    pub tenant: Option<String>,
}

/// The page's tenant and the frame's context.
pub struct Frame {
    /// `None`: the operator's view of every tenant (overview only).
    pub tenant: Option<TenantName>,
    pub ctx: Value,
}

impl Frame {
    /// A tenant viewer sees its own tenant and nothing else; the operator
    /// picks one with `?tenant=` (`all_allowed`: none means every tenant).
    pub async fn new(
        state: &AppState,
        viewer: &Viewer,
        asked: Option<&str>,
        page: &str,
        all_allowed: bool,
    ) -> Result<Self, ConsoleError> {
        let asked = asked.filter(|t| !t.is_empty());
        let tenant = match (&viewer.scope, asked) {
            (KeyScope::Tenant(own), None) => Some(own.clone()),
            (KeyScope::Tenant(own), Some(t)) if t == own.as_str() => Some(own.clone()),
            (KeyScope::Tenant(_), Some(_)) => {
                return Err(ConsoleError::forbidden(
                    "A tenant key sees only its own tenant.",
                ));
            }
            (KeyScope::Operator, None) if all_allowed => None,
            (KeyScope::Operator, None) => Some(TenantName::default_tenant()),
            (KeyScope::Operator, Some(t)) => {
                let t =
                    TenantName::parse(t).map_err(|_| ConsoleError::not_found("No such tenant"))?;
                if state.store.tenant_key_hash(t.as_str()).await?.is_none() {
                    return Err(ConsoleError::not_found("No such tenant"));
                }
                Some(t)
            }
        };
        let tenants: Vec<String> = if viewer.is_operator() {
            state
                .store
                .list_tenants()
                .await?
                .into_iter()
                .map(|t| t.name)
                .collect()
        } else {
            Vec::new()
        };
        let name = tenant.as_ref().map(|t| t.as_str().to_string());
        // Links keep the operator's choice; a tenant's own links need none.
        let tq = match (&name, viewer.is_operator()) {
            (Some(n), true) => format!("?tenant={n}"),
            _ => String::new(),
        };
        let ctx = json!({
            "page": page,
            "operator": viewer.is_operator(),
            "tenant": name,
            "tenants": tenants,
            "tq": tq,
            "csrf": viewer.csrf,
        });
        Ok(Self { tenant, ctx })
    }

    /// The tenant of a page that needs one.
    pub fn one(&self) -> TenantName {
        self.tenant
            .clone()
            .unwrap_or_else(TenantName::default_tenant)
    }

    /// Renders `name` with the frame's context and `extra` merged in.
    pub fn render(&self, name: &str, extra: Value) -> Result<Response, ConsoleError> {
        let mut ctx = self.ctx.clone();
        if let (Some(c), Value::Object(e)) = (ctx.as_object_mut(), extra) {
            c.extend(e);
        }
        Ok(render(name, ctx)?.into_response())
    }
}
