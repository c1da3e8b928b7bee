//! The typed edge stores byte for byte the strings earlier versions did
//! (no migration: old databases keep working), and refuses a stored value
//! it would not have written with [`StoreError::Corrupt`].

use super::backend::Cols;
use super::prelude::*;
use super::{MethodRow, NewCode, SqliteStore, StoreError, UserRow, VerificationRow};
use crate::domain::{ChannelName, CodePurpose, Method, MethodSlot, VerificationStatus};

const NOW: i64 = 1_800_000_000_000;

fn channel(s: &str) -> ChannelName {
    ChannelName::parse(s).unwrap()
}

async fn texts(store: &SqliteStore, sql: &str) -> Vec<String> {
    let rows = store.all(sql, &[]).await.unwrap();
    rows.iter().map(|r| r.text(0).unwrap()).collect()
}

async fn fixture() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    let user = UserRow {
        tenant: "default".into(),
        id: "u1".into(),
        username: "ann".into(),
        password_hash: None,
        email: None,
        email_verified: false,
        name: None,
        default_method: None,
        created_at: NOW,
        language: None,
    };
    store.create_user(&user).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn methods_and_code_purposes_are_stored_as_their_wire_strings() {
    let (_dir, store) = fixture().await;
    let slots = [
        MethodSlot::Pending(channel("sms")),
        MethodSlot::Enabled(Method::Totp),
        MethodSlot::Enabled(Method::Email),
        MethodSlot::Enabled(Method::Channel(channel("telegram-2"))),
    ];
    for method in &slots {
        let row = MethodRow {
            method: method.clone(),
            send_to: None,
        };
        store.put_method("default", "u1", &row, NOW).await.unwrap();
    }
    let stored = texts(&store, "SELECT method FROM user_methods ORDER BY method").await;
    assert_eq!(stored, ["email", "pending:sms", "telegram-2", "totp"]);
    let back: Vec<MethodSlot> = store
        .methods("default", "u1")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.method)
        .collect();
    assert_eq!(back.len(), slots.len());
    assert!(slots.iter().all(|s| back.contains(s)));

    store
        .delete_method("default", "u1", &slots[0])
        .await
        .unwrap();
    let stored = texts(&store, "SELECT method FROM user_methods ORDER BY method").await;
    assert_eq!(stored, ["email", "telegram-2", "totp"]);

    let enrol = CodePurpose::Enrol(channel("sms"));
    let sign_in = CodePurpose::Method(Method::Email);
    let code = NewCode {
        mac: "mac",
        expires_at: NOW + 1,
        created_at: NOW,
        fraud_tracked: false,
    };
    for p in [&enrol, &sign_in] {
        store
            .put_code("default", "user:u1", p, &code)
            .await
            .unwrap();
    }
    let stored = texts(&store, "SELECT purpose FROM codes ORDER BY purpose").await;
    assert_eq!(stored, ["email", "enrol:sms"]);
    assert!(
        store
            .code("default", "user:u1", &enrol)
            .await
            .unwrap()
            .is_some()
    );
    store
        .delete_code("default", "user:u1", &enrol)
        .await
        .unwrap();
    let stored = texts(&store, "SELECT purpose FROM codes").await;
    assert_eq!(stored, ["email"]);
}

#[tokio::test]
async fn verification_statuses_are_stored_as_their_wire_strings() {
    let (_dir, store) = fixture().await;
    let v = VerificationRow {
        id: "ver_1".into(),
        tenant: "default".into(),
        channel: channel("sms"),
        to: "+1***".into(),
        username: None,
        status: VerificationStatus::Pending,
        expires_at: NOW + 1,
        created_at: NOW,
        failure_key: None,
    };
    store.insert_verification(&v).await.unwrap();
    let status = "SELECT status FROM verifications";
    assert_eq!(texts(&store, status).await, ["pending"]);
    let done = VerificationStatus::MaxAttemptsReached;
    assert!(
        store
            .finish_verification("default", "ver_1", done, NOW)
            .await
            .unwrap()
    );
    assert_eq!(texts(&store, status).await, ["max_attempts_reached"]);
    let back = store
        .verification("default", "ver_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((back.channel, back.status), (channel("sms"), done));
}

#[tokio::test]
async fn a_stored_value_postern_would_not_write_is_a_corrupt_row_error() {
    let (_dir, store) = fixture().await;
    let row = MethodRow {
        method: MethodSlot::Enabled(Method::Totp),
        send_to: None,
    };
    store.put_method("default", "u1", &row, NOW).await.unwrap();
    store
        .exec("UPDATE user_methods SET method = 'pending:'", &[])
        .await
        .unwrap();
    match store.methods("default", "u1").await {
        Err(StoreError::Corrupt { what, value, .. }) => {
            assert_eq!((what, value.as_str()), ("2FA method", "pending:"));
        }
        other => panic!("expected a corrupt-row error, got {other:?}"),
    }

    let v = VerificationRow {
        id: "ver_1".into(),
        tenant: "default".into(),
        channel: channel("sms"),
        to: "+1***".into(),
        username: None,
        status: VerificationStatus::Pending,
        expires_at: NOW + 1,
        created_at: NOW,
        failure_key: None,
    };
    store.insert_verification(&v).await.unwrap();
    store
        .exec("UPDATE verifications SET status = 'done'", &[])
        .await
        .unwrap();
    match store.verification("default", "ver_1").await {
        Err(StoreError::Corrupt { what, value, .. }) => {
            assert_eq!((what, value.as_str()), ("verification status", "done"));
        }
        other => panic!("expected a corrupt-row error, got {other:?}"),
    }
}
