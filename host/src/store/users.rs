//! Users and their 2FA methods: TOTP secrets, backup codes, sessions.
//! A method row is a [`MethodSlot`], stored as its wire string (`totp`,
//! `email`, `<channel>`, `pending:<channel>`).

use async_trait::async_trait;

use super::backend::{Arg, Backend, Cols, SqlStore, conflict_on_unique};
use super::{MethodRow, Result, TotpRow, UserRow};
use crate::domain::MethodSlot;

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn create_user(&self, u: &UserRow) -> Result<()>;
    async fn user_by_id(&self, tenant: &str, id: &str) -> Result<Option<UserRow>>;
    async fn user_by_username(&self, tenant: &str, username: &str) -> Result<Option<UserRow>>;
    async fn user_by_email(&self, tenant: &str, email: &str) -> Result<Option<UserRow>>;
    /// Writes name, email, email_verified, password_hash and default_method.
    async fn update_user(&self, u: &UserRow) -> Result<()>;
    async fn delete_user(&self, tenant: &str, id: &str) -> Result<bool>;
    async fn methods(&self, tenant: &str, user_id: &str) -> Result<Vec<MethodRow>>;
    async fn put_method(&self, tenant: &str, user_id: &str, m: &MethodRow, now: i64) -> Result<()>;
    async fn delete_method(&self, tenant: &str, user_id: &str, method: &MethodSlot) -> Result<()>;

    async fn totp(&self, tenant: &str, user_id: &str) -> Result<Option<TotpRow>>;
    async fn set_totp_temp(&self, tenant: &str, user_id: &str, temp: &[u8]) -> Result<()>;
    /// Moves the temp secret to the confirmed one if it is still `temp`.
    async fn confirm_totp(
        &self,
        tenant: &str,
        user_id: &str,
        temp: &[u8],
        step: i64,
    ) -> Result<bool>;
    /// Accepts `step` only if it is newer than every accepted step (replay guard).
    async fn advance_totp_step(&self, tenant: &str, user_id: &str, step: i64) -> Result<bool>;
    async fn delete_totp(&self, tenant: &str, user_id: &str) -> Result<()>;
    async fn replace_backup_codes(
        &self,
        tenant: &str,
        user_id: &str,
        macs: &[String],
    ) -> Result<()>;
    async fn use_backup_code(&self, tenant: &str, user_id: &str, mac: &str) -> Result<bool>;
    async fn count_backup_codes(&self, tenant: &str, user_id: &str) -> Result<u64>;

    async fn create_session(
        &self,
        token_hash: &str,
        tenant: &str,
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()>;
    /// The session's user id, if the session exists, is unexpired and belongs to `tenant`.
    async fn session_user(
        &self,
        token_hash: &str,
        tenant: &str,
        now: i64,
    ) -> Result<Option<String>>;
    async fn delete_session(&self, token_hash: &str) -> Result<()>;
    async fn delete_sessions(&self, tenant: &str, user_id: &str) -> Result<u64>;
}

const USER_COLUMNS: &str = "tenant, id, username, password_hash, email, email_verified, name,
    default_method, created_at, language";

fn user_row(r: &impl Cols) -> Result<UserRow> {
    Ok(UserRow {
        tenant: r.text(0)?,
        id: r.text(1)?,
        username: r.text(2)?,
        password_hash: r.opt_text(3)?,
        email: r.opt_text(4)?,
        email_verified: r.flag(5)?,
        name: r.opt_text(6)?,
        default_method: r.opt_text(7)?,
        created_at: r.int(8)?,
        language: r.opt_text(9)?,
    })
}

impl<B: Backend> SqlStore<B> {
    /// The tenant's first user (oldest) matching `condition` on `$2`.
    async fn one_user(
        &self,
        condition: &str,
        tenant: &str,
        value: &str,
    ) -> Result<Option<UserRow>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant = $1 AND {condition}
             ORDER BY created_at LIMIT 1"
        );
        let r = self.opt(&sql, &[tenant.into(), value.into()]).await?;
        r.as_ref().map(user_row).transpose()
    }
}

#[async_trait]
impl<B: Backend> UserStore for SqlStore<B> {
    async fn create_user(&self, u: &UserRow) -> Result<()> {
        let r = self
            .exec(
                "INSERT INTO users (tenant, id, username, password_hash, email, email_verified,
                    name, default_method, created_at, language)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    (&u.tenant).into(),
                    (&u.id).into(),
                    (&u.username).into(),
                    (&u.password_hash).into(),
                    (&u.email).into(),
                    u.email_verified.into(),
                    (&u.name).into(),
                    (&u.default_method).into(),
                    u.created_at.into(),
                    (&u.language).into(),
                ],
            )
            .await;
        conflict_on_unique(r).map(drop)
    }

    async fn user_by_id(&self, tenant: &str, id: &str) -> Result<Option<UserRow>> {
        self.one_user("id = $2", tenant, id).await
    }

    async fn user_by_username(&self, tenant: &str, username: &str) -> Result<Option<UserRow>> {
        self.one_user("username = $2", tenant, username).await
    }

    async fn user_by_email(&self, tenant: &str, email: &str) -> Result<Option<UserRow>> {
        self.one_user("lower(email) = lower($2)", tenant, email)
            .await
    }

    async fn update_user(&self, u: &UserRow) -> Result<()> {
        self.exec(
            "UPDATE users SET password_hash = $3, email = $4, email_verified = $5, name = $6,
                default_method = $7, language = $8 WHERE tenant = $1 AND id = $2",
            &[
                (&u.tenant).into(),
                (&u.id).into(),
                (&u.password_hash).into(),
                (&u.email).into(),
                u.email_verified.into(),
                (&u.name).into(),
                (&u.default_method).into(),
                (&u.language).into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn delete_user(&self, tenant: &str, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let subject = format!("user:{id}");
        tx.exec(
            "DELETE FROM codes WHERE tenant = $1 AND subject = $2",
            &[tenant.into(), (&subject).into()],
        )
        .await?;
        let n = tx
            .exec(
                "DELETE FROM users WHERE tenant = $1 AND id = $2",
                &[tenant.into(), id.into()],
            )
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn methods(&self, tenant: &str, user_id: &str) -> Result<Vec<MethodRow>> {
        let rows = self
            .all(
                "SELECT method, send_to FROM user_methods WHERE tenant = $1 AND user_id = $2
                 ORDER BY method",
                &[tenant.into(), user_id.into()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(MethodRow {
                    method: r.parsed(0, "2FA method", MethodSlot::parse)?,
                    send_to: r.opt_text(1)?,
                })
            })
            .collect()
    }

    async fn put_method(&self, tenant: &str, user_id: &str, m: &MethodRow, now: i64) -> Result<()> {
        self.exec(
            "INSERT INTO user_methods (tenant, user_id, method, send_to, created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant, user_id, method) DO UPDATE SET send_to = excluded.send_to",
            &[
                tenant.into(),
                user_id.into(),
                m.method.as_str().as_ref().into(),
                (&m.send_to).into(),
                now.into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn delete_method(&self, tenant: &str, user_id: &str, method: &MethodSlot) -> Result<()> {
        self.exec(
            "DELETE FROM user_methods WHERE tenant = $1 AND user_id = $2 AND method = $3",
            &[
                tenant.into(),
                user_id.into(),
                method.as_str().as_ref().into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn totp(&self, tenant: &str, user_id: &str) -> Result<Option<TotpRow>> {
        let r = self
            .opt(
                "SELECT secret, temp_secret, last_step FROM user_totp
                 WHERE tenant = $1 AND user_id = $2",
                &[tenant.into(), user_id.into()],
            )
            .await?;
        r.map(|r| {
            Ok(TotpRow {
                secret: r.opt_bytes(0)?,
                temp_secret: r.opt_bytes(1)?,
                last_step: r.int(2)?,
            })
        })
        .transpose()
    }

    async fn set_totp_temp(&self, tenant: &str, user_id: &str, temp: &[u8]) -> Result<()> {
        self.exec(
            "INSERT INTO user_totp (tenant, user_id, temp_secret) VALUES ($1, $2, $3)
             ON CONFLICT (tenant, user_id) DO UPDATE SET temp_secret = excluded.temp_secret",
            &[tenant.into(), user_id.into(), temp.into()],
        )
        .await?;
        Ok(())
    }

    async fn confirm_totp(
        &self,
        tenant: &str,
        user_id: &str,
        temp: &[u8],
        step: i64,
    ) -> Result<bool> {
        let n = self
            .exec(
                "UPDATE user_totp SET secret = temp_secret, temp_secret = NULL, last_step = $4
                 WHERE tenant = $1 AND user_id = $2 AND temp_secret = $3",
                &[tenant.into(), user_id.into(), temp.into(), step.into()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn advance_totp_step(&self, tenant: &str, user_id: &str, step: i64) -> Result<bool> {
        let n = self
            .exec(
                "UPDATE user_totp SET last_step = $3
                 WHERE tenant = $1 AND user_id = $2 AND last_step < $3",
                &[tenant.into(), user_id.into(), step.into()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn delete_totp(&self, tenant: &str, user_id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        for sql in [
            "DELETE FROM user_totp WHERE tenant = $1 AND user_id = $2",
            "DELETE FROM backup_codes WHERE tenant = $1 AND user_id = $2",
        ] {
            tx.exec(sql, &[tenant.into(), user_id.into()]).await?;
        }
        tx.commit().await
    }

    async fn replace_backup_codes(
        &self,
        tenant: &str,
        user_id: &str,
        macs: &[String],
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.exec(
            "DELETE FROM backup_codes WHERE tenant = $1 AND user_id = $2",
            &[tenant.into(), user_id.into()],
        )
        .await?;
        if !macs.is_empty() {
            let sql = format!(
                "INSERT INTO backup_codes (tenant, user_id, code_mac) SELECT $1, $2, mac FROM {}",
                B::texts_table("mac", 3, macs.len())
            );
            tx.exec(&sql, &[tenant.into(), user_id.into(), Arg::Texts(macs)])
                .await?;
        }
        tx.commit().await
    }

    async fn use_backup_code(&self, tenant: &str, user_id: &str, mac: &str) -> Result<bool> {
        let n = self
            .exec(
                "DELETE FROM backup_codes WHERE tenant = $1 AND user_id = $2 AND code_mac = $3",
                &[tenant.into(), user_id.into(), mac.into()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn count_backup_codes(&self, tenant: &str, user_id: &str) -> Result<u64> {
        let r = self
            .one(
                "SELECT COUNT(*) FROM backup_codes WHERE tenant = $1 AND user_id = $2",
                &[tenant.into(), user_id.into()],
            )
            .await?;
        Ok(r.int(0)? as u64)
    }

    async fn create_session(
        &self,
        token_hash: &str,
        tenant: &str,
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO sessions (token_hash, tenant, user_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                token_hash.into(),
                tenant.into(),
                user_id.into(),
                now.into(),
                expires_at.into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn session_user(
        &self,
        token_hash: &str,
        tenant: &str,
        now: i64,
    ) -> Result<Option<String>> {
        let r = self
            .opt(
                "SELECT user_id FROM sessions
                 WHERE token_hash = $1 AND tenant = $2 AND expires_at > $3",
                &[token_hash.into(), tenant.into(), now.into()],
            )
            .await?;
        r.map(|r| r.text(0)).transpose()
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        self.exec(
            "DELETE FROM sessions WHERE token_hash = $1",
            &[token_hash.into()],
        )
        .await?;
        Ok(())
    }

    async fn delete_sessions(&self, tenant: &str, user_id: &str) -> Result<u64> {
        self.exec(
            "DELETE FROM sessions WHERE tenant = $1 AND user_id = $2",
            &[tenant.into(), user_id.into()],
        )
        .await
    }
}
