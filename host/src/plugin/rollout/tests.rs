//! The rollback rule against a real SQLite store and a [`TestClock`]: two
//! hosts (two `Rollouts` on one database) count into the same windows, the
//! rollback happens once, at the clock's time, audited and counted.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::{Clock, TestClock};
use crate::store::{PluginRow, SqliteStore};

const T: &str = "acme";
const P: &str = "sms";

fn plugin(sha: &str, at: i64) -> PluginRow {
    PluginRow {
        tenant: T.into(),
        name: P.into(),
        sha256: sha.into(),
        size: 3,
        info: "{}".into(),
        wasm: sha.as_bytes().to_vec(),
        uploaded_at: at,
        signature: None,
        key_id: None,
        imports: "[]".into(),
    }
}

struct Fixture {
    store: Arc<dyn Store>,
    clock: Arc<TestClock>,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
        let clock = TestClock::at(1_700_000_000_000);
        store.ensure_tenant(T, clock.now_ms()).await.unwrap();
        store
            .put_plugin(&plugin("stable", clock.now_ms()))
            .await
            .unwrap();
        let rollout = RolloutRow {
            state: RolloutState::Canary,
            percent: 50,
            stable_sha256: "stable".into(),
            candidate: plugin("canary", clock.now_ms()),
            reason: None,
            ended_at: None,
        };
        store.start_rollout(&rollout).await.unwrap();
        Self {
            store,
            clock,
            metrics: Arc::new(Metrics::new()),
            _dir: dir,
        }
    }

    /// One host's view: `window` 4, margin 25 points.
    fn host(&self) -> Rollouts {
        let settings = Settings {
            window: 4,
            margin_percent: 25,
        };
        Rollouts::new(
            self.store.clone(),
            self.clock.clone(),
            self.metrics.clone(),
            settings,
        )
    }

    async fn live(&self) -> Option<RolloutRow> {
        self.host().live(T, P).await.unwrap()
    }
}

#[tokio::test]
async fn a_failing_canary_goes_after_a_full_window_once_across_hosts() {
    let f = Fixture::new().await;
    let (a, b) = (f.host(), f.host());
    let live = f.live().await.unwrap();
    for _ in 0..4 {
        a.record(&live, Version::Stable, false).await.unwrap();
    }
    // Three failures of four allowed deliveries: no verdict before the window is full.
    a.record(&live, Version::Canary, true).await.unwrap();
    b.record(&live, Version::Canary, true).await.unwrap();
    a.record(&live, Version::Canary, true).await.unwrap();
    assert!(f.live().await.is_some(), "rolled back before a full window");

    f.clock.advance(Duration::from_secs(90));
    b.record(&live, Version::Canary, false).await.unwrap();
    // 75 % against 0 %: more than 25 points worse.
    let ended = f.store.rollout(T, P).await.unwrap().unwrap();
    assert_eq!(ended.state, RolloutState::RolledBack);
    assert_eq!(ended.ended_at, Some(f.clock.now_ms()));
    let reason = ended.reason.unwrap();
    assert!(
        reason.contains("failed 3 of its last 4 deliveries (75 %)"),
        "{reason}"
    );
    assert!(reason.contains("0 of 4 (0 %)"), "{reason}");

    // Host A, still holding the old row, finds it ended: no second record.
    a.record(&live, Version::Canary, true).await.unwrap();
    let audit = f.store.list_audit(T, 10).await.unwrap();
    let rollbacks: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "plugin.rollback")
        .collect();
    assert_eq!(rollbacks.len(), 1, "{audit:?}");
    assert_eq!(rollbacks[0].actor, "postern");
    assert!(
        rollbacks[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("trigger=automatic")
    );
    let rendered = f.metrics.render();
    assert!(
        rendered.contains(
            r#"postern_plugin_rollbacks_total{plugin="sms",tenant="acme",trigger="automatic"} 1"#
        ),
        "{rendered}"
    );
    // The plugin's live version never changed.
    let plugins = f.store.plugins(Some(T)).await.unwrap();
    assert_eq!(plugins[0].sha256, "stable");
}

#[tokio::test]
async fn a_canary_within_the_margin_stays_and_the_window_slides() {
    let f = Fixture::new().await;
    let a = f.host();
    let live = f.live().await.unwrap();
    // Stable fails half the time; a canary failing as often stays.
    for failed in [true, false, true, false] {
        a.record(&live, Version::Stable, failed).await.unwrap();
        a.record(&live, Version::Canary, failed).await.unwrap();
    }
    assert!(f.live().await.is_some());
    // Only the last four count: four good canary deliveries clear it.
    for _ in 0..4 {
        a.record(&live, Version::Canary, false).await.unwrap();
    }
    let counts = a.counts(&live).await.unwrap();
    assert_eq!(
        (counts.canary.deliveries, counts.canary.failed),
        (4, 0),
        "{counts:?}"
    );
    assert_eq!((counts.stable.deliveries, counts.stable.failed), (4, 2));
}

#[tokio::test]
async fn promote_and_rollback_by_hand() {
    let f = Fixture::new().await;
    let a = f.host();
    f.clock.advance(Duration::from_secs(60));
    let done = a.promote(T, P).await.unwrap();
    assert_eq!(done.state, RolloutState::Promoted);
    assert_eq!(done.ended_at, Some(f.clock.now_ms()));
    let plugins = f.store.plugins(Some(T)).await.unwrap();
    assert_eq!(plugins[0].sha256, "canary");
    assert_eq!(plugins[0].uploaded_at, f.clock.now_ms());
    let bytes = f.store.plugin_bytes(T, P).await.unwrap().unwrap();
    assert_eq!(bytes, b"canary");
    // Nothing live any more: both answers refuse.
    assert!(matches!(a.promote(T, P).await, Err(RolloutError::NotLive)));
    assert!(matches!(
        a.roll_back_by_hand(T, P).await,
        Err(RolloutError::NotLive)
    ));
    assert!(matches!(
        a.promote(T, "nope").await,
        Err(RolloutError::NotFound)
    ));

    let again = RolloutRow {
        state: RolloutState::Canary,
        percent: 10,
        stable_sha256: "canary".into(),
        candidate: plugin("third", f.clock.now_ms()),
        reason: None,
        ended_at: None,
    };
    f.store.start_rollout(&again).await.unwrap();
    let done = a.roll_back_by_hand(T, P).await.unwrap();
    assert_eq!(done.state, RolloutState::RolledBack);
    assert_eq!(done.reason.as_deref(), Some("rolled back by hand"));
    assert_eq!(f.store.plugins(Some(T)).await.unwrap()[0].sha256, "canary");
}
