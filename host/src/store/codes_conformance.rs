//! One-time codes, verifications and rate windows on both backends, with
//! two store instances (two hosts) racing.

use futures::future::join_all;

use super::conformance::backends;
use super::{NewCode, VerificationRow};
use crate::domain::{ChannelName, CodePurpose, VerificationStatus};

const NOW: i64 = 1_800_000_000_000;

fn code(mac: &str) -> NewCode<'_> {
    NewCode {
        mac,
        expires_at: NOW + 60_000,
        created_at: NOW,
        fraud_tracked: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn codes_are_consumed_once_and_wrong_attempts_stop_at_the_cap() {
    for p in backends().await {
        let (t, s) = ("default", "verify:v1");
        let purpose = &CodePurpose::parse("url").unwrap();
        p.a.put_code(t, s, purpose, &code("mac1")).await.unwrap();
        let consumed = join_all((0..16).map(|i| {
            let store = if i % 2 == 0 { p.a.clone() } else { p.b.clone() };
            async move {
                store
                    .consume_code(t, s, purpose, "mac1", NOW, 5)
                    .await
                    .unwrap()
            }
        }))
        .await;
        assert_eq!(consumed.iter().filter(|c| **c).count(), 1, "{}", p.name);

        p.b.put_code(t, s, purpose, &code("mac2")).await.unwrap();
        let counts = join_all((0..24).map(|i| {
            let store = if i % 2 == 0 { p.a.clone() } else { p.b.clone() };
            async move { store.fail_code(t, s, purpose, NOW, 5).await.unwrap() }
        }))
        .await;
        let mut counted: Vec<u32> = counts.iter().flatten().copied().collect();
        counted.sort();
        assert_eq!(counted, [1, 2, 3, 4, 5], "{}", p.name);
        assert!(
            !p.a.consume_code(t, s, purpose, "mac2", NOW, 5)
                .await
                .unwrap()
        );
        assert_eq!(p.b.code(t, s, purpose).await.unwrap().unwrap().attempts, 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_windows_count_every_hit_once() {
    for p in backends().await {
        let counts = join_all((0..40).map(|i| {
            let store = if i % 2 == 0 { p.a.clone() } else { p.b.clone() };
            async move { store.rate_hit("k", NOW + i, 60_000).await.unwrap().0 }
        }))
        .await;
        let mut sorted = counts.clone();
        sorted.sort();
        assert_eq!(sorted, (1..=40).collect::<Vec<u64>>(), "{}", p.name);
        // The window starts at its first hit (NOW + 0..40); past its end a
        // new one starts over.
        let later = NOW + 60_100;
        assert_eq!(
            p.b.rate_hit("k", later, 60_000).await.unwrap(),
            (1, later),
            "{}",
            p.name
        );
        // Several keys in one statement, racing on two hosts: each key's
        // hits are all counted, and answers come in the order asked.
        let pairs = join_all((0..20).map(|i| {
            let store = if i % 2 == 0 { p.a.clone() } else { p.b.clone() };
            let keys = if i % 2 == 0 { ["x", "y"] } else { ["y", "x"] };
            async move {
                let hits = store.rate_hits(&keys, later, 60_000).await.unwrap();
                (keys[0], hits[0].0, hits[1].0)
            }
        }))
        .await;
        let mut xs: Vec<u64> = pairs
            .iter()
            .map(|(first, a, b)| if *first == "x" { *a } else { *b })
            .collect();
        xs.sort();
        assert_eq!(xs, (1..=20).collect::<Vec<u64>>(), "{}", p.name);
        assert_eq!(
            p.a.rate_hits(&["y", "k"], later, 60_000).await.unwrap(),
            [(21, later), (2, later)],
            "{}",
            p.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_verification_is_read_with_its_destinations_failure_count() {
    for p in backends().await {
        let v = VerificationRow {
            id: "ver_1".into(),
            tenant: "default".into(),
            channel: ChannelName::parse("sms").unwrap(),
            to: "+1***".into(),
            username: None,
            status: VerificationStatus::Pending,
            expires_at: NOW + 600_000,
            created_at: NOW,
            failure_key: Some("verify:default:sms:abc".into()),
        };
        p.a.insert_verification(&v).await.unwrap();
        let (back, count) =
            p.b.verification_for_check("default", "ver_1")
                .await
                .unwrap()
                .unwrap();
        assert_eq!(
            (back.id.as_str(), back.failure_key.as_deref()),
            ("ver_1", v.failure_key.as_deref()),
            "{}",
            p.name
        );
        assert!(count.is_none(), "{}", p.name);
        for _ in 0..2 {
            p.a.record_failure("verify:default:sms:abc", "default", NOW)
                .await
                .unwrap();
        }
        let (_, count) =
            p.b.verification_for_check("default", "ver_1")
                .await
                .unwrap()
                .unwrap();
        assert_eq!(
            count.map(|c| (c.failures, c.locked_until)),
            Some((2, None)),
            "{}",
            p.name
        );
        assert!(
            p.b.verification_for_check("default", "ver_2")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            p.b.verification_for_check("other", "ver_1")
                .await
                .unwrap()
                .is_none()
        );
    }
}
