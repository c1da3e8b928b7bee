//! The guarantees callers rely on, checked on both backends with two store
//! instances (two pools, as two hosts would have) racing each other. SQLite
//! always; PostgreSQL too when `POSTERN_TEST_DATABASE_URL` names a server
//! (an admin connection: each test creates and drops its own database).

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::join_all;
use sqlx::Connection;

use super::{
    AttemptRow, ChannelRow, DeliveryFilter, DeliveryStatus, Finish, MessageFacts, NewDelivery,
    PgStore, PluginRow, SmsFacts, SqliteStore, Store, UserRow,
};

const NOW: i64 = 1_800_000_000_000;

/// A backend under test: two independent stores on one database.
pub(super) struct Pair {
    pub(super) name: &'static str,
    pub(super) a: Arc<dyn Store>,
    pub(super) b: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl Drop for Pair {
    fn drop(&mut self) {
        if let Some((admin, db)) = self.pg.take() {
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let mut c = sqlx::PgConnection::connect(&admin).await.ok()?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                        .execute(&mut c)
                        .await
                        .ok()
                })
            })
            .join();
        }
    }
}

pub(super) async fn backends() -> Vec<Pair> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let a: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
    let mut out = vec![Pair {
        name: "sqlite",
        a,
        b,
        _dir: Some(dir),
        pg: None,
    }];
    if let Some(admin) = std::env::var("POSTERN_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        let db = format!("postern_unit_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut c)
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{db}"));
        let a: Arc<dyn Store> = Arc::new(PgStore::open(url.as_str()).await.unwrap());
        let b: Arc<dyn Store> = Arc::new(PgStore::open(url.as_str()).await.unwrap());
        out.push(Pair {
            name: "postgres",
            a,
            b,
            _dir: None,
            pg: Some((admin, db)),
        });
    }
    out
}

fn delivery(i: usize) -> NewDelivery {
    NewDelivery {
        id: format!("dlv_{i:04}"),
        tenant: "default".into(),
        channel: "url".into(),
        send_to_masked: "u***@example.com".into(),
        username: None,
        payload: vec![i as u8; 16],
        next_attempt_at: NOW - 1000 + i as i64,
        expires_at: NOW + 600_000,
        fallback_of: None,
        fallback_depth: 0,
        created_at: NOW,
        lease: None,
        facts: MessageFacts {
            locale: Some("de-AT".into()),
            sms: Some(SmsFacts {
                encoding: "UCS-2".into(),
                segments: 2,
            }),
        },
    }
}

fn delivered() -> Finish {
    Finish {
        attempt: Some(AttemptRow {
            at: NOW,
            outcome: "delivered".into(),
            detail: "200".into(),
            duration_ms: 5,
            plugin_sha256: None,
            resources: Some(crate::delivery::Resources {
                plugin: "p".into(),
                cpu_us: 1_500,
                peak_memory_bytes: 2 << 20,
                http_requests: 1,
                failure: None,
            }),
        }),
        status: DeliveryStatus::Delivered,
        next_attempt_at: None,
        provider_id: None,
        log: None,
        then_enqueue: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn due_deliveries_are_leased_to_one_worker_only() {
    for p in backends().await {
        for i in 0..120 {
            p.a.insert_delivery(&delivery(i)).await.unwrap();
        }
        // Eight workers, four per store, claim small batches until empty.
        let workers = (0..8).map(|w| {
            let store = if w % 2 == 0 { p.a.clone() } else { p.b.clone() };
            async move {
                let owner = format!("w{w}");
                let mut got = Vec::new();
                loop {
                    let batch = store.claim_due(&owner, NOW, NOW + 30_000, 5).await.unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    got.extend(batch.into_iter().map(|d| (d.id, owner.clone())));
                }
                got
            }
        });
        let claims: Vec<(String, String)> = join_all(workers).await.into_iter().flatten().collect();
        let ids: HashSet<&String> = claims.iter().map(|(id, _)| id).collect();
        assert_eq!(claims.len(), 120, "{}: a delivery was leased twice", p.name);
        assert_eq!(ids.len(), 120, "{}", p.name);

        // Only the lease holder records the outcome, and only once.
        let (id, owner) = &claims[0];
        assert!(!p.b.finish(id, "intruder", NOW, delivered()).await.unwrap());
        assert!(p.b.finish(id, owner, NOW, delivered()).await.unwrap());
        assert!(!p.a.finish(id, owner, NOW, delivered()).await.unwrap());
        let d = p.a.get_delivery("default", id).await.unwrap().unwrap();
        assert_eq!(d.locale.as_deref(), Some("de-AT"), "{}", p.name);
        assert_eq!(d.sms.as_ref().map(|s| s.segments), Some(2), "{}", p.name);
        assert_eq!(
            (d.status.as_str(), d.attempts.len()),
            ("delivered", 1),
            "{}",
            p.name
        );
        let a = &d.attempts[0];
        assert_eq!(
            (a.cpu_ms, a.peak_memory_bytes, a.http_requests),
            (Some(1.5), Some(2 << 20), Some(1)),
            "{}: the attempt's resource figures",
            p.name
        );
        assert_eq!(p.a.count_pending().await.unwrap(), 119, "{}", p.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_lease_is_taken_over_and_the_old_holder_cannot_finish() {
    for p in backends().await {
        p.a.insert_delivery(&delivery(1)).await.unwrap();
        let first = p.a.claim_due("dead", NOW, NOW + 5_000, 10).await.unwrap();
        assert_eq!(first.len(), 1);
        assert!(
            p.b.claim_due("alive", NOW + 1_000, NOW + 6_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            p.b.next_due_at().await.unwrap(),
            Some(NOW + 5_000),
            "{}",
            p.name
        );
        let taken =
            p.b.claim_due("alive", NOW + 5_001, NOW + 35_000, 10)
                .await
                .unwrap();
        assert_eq!(taken.len(), 1, "{}", p.name);
        assert!(
            !p.a.finish("dlv_0001", "dead", NOW, delivered())
                .await
                .unwrap()
        );
        // The fallback is stored in the same transaction as the outcome.
        let mut f = delivered();
        f.status = DeliveryStatus::Failed;
        f.then_enqueue = Some(NewDelivery {
            fallback_of: Some("dlv_0001".into()),
            fallback_depth: 1,
            ..delivery(2)
        });
        assert!(p.b.finish("dlv_0001", "alive", NOW, f).await.unwrap());
        let (list, total) =
            p.a.list_deliveries(
                "default",
                &DeliveryFilter {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(total, 2, "{}", p.name);
        assert!(
            list.iter()
                .any(|d| d.fallback_of.as_deref() == Some("dlv_0001"))
        );
        assert!(
            p.a.claim_by_id("dlv_0002", "x", NOW, NOW + 1)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            p.b.claim_by_id("dlv_0002", "y", NOW, NOW + 1)
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn totp_steps_only_move_forward_and_users_round_trip() {
    for p in backends().await {
        let u = UserRow {
            tenant: "default".into(),
            id: "u1".into(),
            username: "ann".into(),
            password_hash: None,
            email: Some("Ann@Example.com".into()),
            email_verified: true,
            name: None,
            default_method: Some("email".into()),
            created_at: NOW,
            language: Some("de-AT".into()),
        };
        p.a.create_user(&u).await.unwrap();
        assert!(matches!(
            p.b.create_user(&u).await,
            Err(super::StoreError::Conflict)
        ));
        let back =
            p.b.user_by_email("default", "ann@example.com")
                .await
                .unwrap()
                .unwrap();
        assert!(back.email_verified, "{}", p.name);
        p.a.set_totp_temp("default", "u1", b"secret").await.unwrap();
        assert!(
            p.b.confirm_totp("default", "u1", b"secret", 10)
                .await
                .unwrap()
        );
        let wins = join_all((0..10).map(|i| {
            let store = if i % 2 == 0 { p.a.clone() } else { p.b.clone() };
            async move { store.advance_totp_step("default", "u1", 11).await.unwrap() }
        }))
        .await;
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{}", p.name);
        assert!(!p.a.advance_totp_step("default", "u1", 5).await.unwrap());
        let totp = p.a.totp("default", "u1").await.unwrap().unwrap();
        assert_eq!(
            (totp.secret.as_deref(), totp.last_step),
            (Some(&b"secret"[..]), 11)
        );
        p.a.replace_backup_codes("default", "u1", &["m1".into(), "m2".into()])
            .await
            .unwrap();
        assert!(p.b.use_backup_code("default", "u1", "m1").await.unwrap());
        assert!(!p.a.use_backup_code("default", "u1", "m1").await.unwrap());
        assert_eq!(p.a.count_backup_codes("default", "u1").await.unwrap(), 1);
        assert!(p.b.delete_user("default", "u1").await.unwrap());
        assert!(
            p.a.totp("default", "u1").await.unwrap().is_none(),
            "{}",
            p.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_channel_change_on_one_host_is_seen_by_the_other() {
    for p in backends().await {
        let before = p.b.channels_version().await.unwrap();
        p.a.create_tenant("acme", Some("hash"), NOW).await.unwrap();
        let c = ChannelRow {
            tenant: "acme".into(),
            name: "hook".into(),
            kind: "url".into(),
            config: "{}".into(),
            secrets: Some(vec![1, 2, 3]),
            secret_keys: "[]".into(),
            plugin: None,
            allowed_hosts: "[]".into(),
            send_to_type: None,
            send_to_regex: None,
            fallback: None,
            created_at: NOW,
            updated_at: NOW,
            templates: Some(r#"{"webotp":true}"#.into()),
        };
        p.a.put_channel(&c).await.unwrap();
        let after = p.b.channels_version().await.unwrap();
        assert!(after > before, "{}: {before} -> {after}", p.name);
        let seen = p.b.channels(Some("acme")).await.unwrap();
        assert_eq!(seen.len(), 1, "{}", p.name);
        assert_eq!(seen[0].secrets.as_deref(), Some(&[1u8, 2, 3][..]));
        assert_eq!(seen[0].templates, c.templates, "{}", p.name);
        assert_eq!(p.b.channels(None).await.unwrap().len(), 1);
        let plugin = PluginRow {
            tenant: "acme".into(),
            name: "tg".into(),
            sha256: "ab".repeat(32),
            size: 4,
            info: "{}".into(),
            wasm: b"\0asm".to_vec(),
            uploaded_at: NOW,
            signature: None,
            key_id: None,
            imports: "[]".into(),
        };
        p.a.put_plugin(&plugin).await.unwrap();
        assert!(p.b.channels_version().await.unwrap() > after, "{}", p.name);
        let listed = p.b.plugins(None).await.unwrap();
        assert_eq!(
            (listed.len(), listed[0].wasm.len(), listed[0].size),
            (1, 0, 4)
        );
        assert_eq!(
            p.b.plugin_bytes("acme", "tg").await.unwrap().as_deref(),
            Some(&b"\0asm"[..])
        );
        assert!(p.b.delete_plugin("acme", "tg").await.unwrap());
        assert!(!p.a.delete_plugin("acme", "tg").await.unwrap());
        let after = p.a.channels_version().await.unwrap();
        assert!(p.b.delete_tenant("acme").await.unwrap());
        assert!(p.a.channels(None).await.unwrap().is_empty(), "{}", p.name);
        assert!(p.a.channels_version().await.unwrap() > after);
    }
}
