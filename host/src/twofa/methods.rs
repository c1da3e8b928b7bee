//! A user's enabled 2FA methods: which, in what order, where each sends
//! its codes; and turning them off.

use std::collections::BTreeMap;

use super::{R, TwoFactor, user_subject};
use crate::domain::{CodePurpose, Method, MethodSlot};
use crate::store::{MethodRow, UserRow};

/// An enabled method and, for a channel, the user's send-to on it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserMethod {
    pub method: Method,
    pub send_to: Option<String>,
}

impl UserMethod {
    /// The send-to of a code-delivering method (`email` uses the user's
    /// address); none for TOTP.
    pub(super) fn destination(&self, user: &UserRow) -> Option<String> {
        match self.method {
            Method::Email => user.email.clone(),
            Method::Totp | Method::Password => None,
            Method::Channel(_) => self.send_to.clone(),
        }
    }

    /// The store row of this method.
    pub(super) fn row(method: &Method, send_to: Option<String>) -> MethodRow {
        MethodRow {
            method: MethodSlot::Enabled(method.clone()),
            send_to,
        }
    }
}

pub(super) fn method_names(methods: &[UserMethod]) -> Vec<Method> {
    methods.iter().map(|m| m.method.clone()).collect()
}

/// Send-to values of the user's other methods, by channel, for fallbacks.
pub(super) fn alternates(user: &UserRow, methods: &[UserMethod]) -> BTreeMap<String, String> {
    methods
        .iter()
        .filter_map(|m| m.destination(user).map(|d| (m.method.to_string(), d)))
        .collect()
}

impl TwoFactor {
    /// The user's enabled methods: `totp` first, then `email`, then channels.
    pub async fn methods(&self, user: &UserRow) -> R<Vec<UserMethod>> {
        let rows = self.store.methods(&user.tenant, &user.id).await?;
        let mut m: Vec<UserMethod> = rows
            .into_iter()
            .filter_map(|row| match row.method {
                MethodSlot::Enabled(method) => Some(UserMethod {
                    method,
                    send_to: row.send_to,
                }),
                MethodSlot::Pending(_) => None,
            })
            .collect();
        m.sort_by(|a, b| {
            (a.method.rank().cmp(&b.method.rank()))
                .then_with(|| a.method.as_str().cmp(b.method.as_str()))
        });
        Ok(m)
    }

    /// Removes one method (`email`, a channel or `totp`), or every one.
    pub async fn disable(&self, user: &mut UserRow, method: Option<Method>) -> R<()> {
        let methods = self.methods(user).await?;
        for m in methods
            .iter()
            .filter(|m| method.as_ref().is_none_or(|x| *x == m.method))
        {
            let slot = MethodSlot::Enabled(m.method.clone());
            self.store
                .delete_method(&user.tenant, &user.id, &slot)
                .await?;
            let purpose = CodePurpose::Method(m.method.clone());
            self.store
                .delete_code(&user.tenant, &user_subject(user), &purpose)
                .await?;
            if m.method == Method::Totp {
                self.store.delete_totp(&user.tenant, &user.id).await?;
            }
        }
        let method = method.as_ref().map(Method::as_str);
        if method.is_none() || user.default_method.as_deref() == method {
            user.default_method = None;
            self.store.update_user(user).await?;
        }
        self.audit(
            &user.tenant,
            &user.username,
            "enrol.disable",
            Some(&user.username),
            Some(method.unwrap_or("all")),
        )
        .await;
        Ok(())
    }
}
