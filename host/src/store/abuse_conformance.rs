//! The failure counts and the pumping guard's figures on both backends,
//! with two store instances (two hosts) counting at once.

use futures::future::join_all;

use super::FlaggedPrefix;
use super::conformance::backends;

const NOW: i64 = 1_800_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_from_two_hosts_all_count_and_one_of_them_locks() {
    for p in backends().await {
        let key = "user:a_b:u1:email";
        let hits = (0..40).map(|i| {
            let s = if i % 2 == 0 { p.a.clone() } else { p.b.clone() };
            async move { s.record_failure(key, "a_b", NOW).await.unwrap() }
        });
        let counts: Vec<u32> = join_all(hits).await.iter().map(|c| c.failures).collect();
        assert_eq!(counts.iter().max(), Some(&40), "{}", p.name);
        let mut sorted = counts.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (1..=40).collect::<Vec<u32>>(),
            "{}: each failure counted once",
            p.name
        );
        let (x, y) = tokio::join!(
            p.a.lock_failures(key, 0, NOW + 1000, NOW),
            p.b.lock_failures(key, 0, NOW + 1000, NOW),
        );
        assert!(
            x.unwrap() ^ y.unwrap(),
            "{}: exactly one host locks",
            p.name
        );
        let c = p.a.failure_count(key).await.unwrap().unwrap();
        assert!(c.is_locked(NOW) && !c.is_locked(NOW + 1000), "{}", p.name);
        assert_eq!(
            p.b.locked_by_tenant(NOW).await.unwrap(),
            vec![("a_b".to_string(), 1)]
        );
        // After the lock ran out a failure starts the count again; the lock number stays.
        let c = p.b.record_failure(key, "a_b", NOW + 1000).await.unwrap();
        assert_eq!(
            (c.failures, c.locks, c.locked_until),
            (1, 1, None),
            "{}",
            p.name
        );
        // `_` in a tenant name is no wildcard.
        p.a.record_failure("user:aXb:u1:email", "aXb", NOW)
            .await
            .unwrap();
        assert_eq!(
            p.a.clear_failures_prefixed("user:a_b:u1:", NOW)
                .await
                .unwrap(),
            0
        );
        assert_eq!(p.a.failure_count(key).await.unwrap(), None, "{}", p.name);
        assert!(
            p.a.failure_count("user:aXb:u1:email")
                .await
                .unwrap()
                .is_some()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_guard_counts_sends_and_checks_in_its_window_and_flags_once() {
    for p in backends().await {
        for (i, at) in [NOW - 5000, NOW - 10, NOW].into_iter().enumerate() {
            let subject = format!("verify:v{i}");
            p.a.record_fraud_send("t", "+44740", &subject, "sms", at, NOW - 60_000)
                .await
                .unwrap();
        }
        p.b.mark_converted("t", "verify:v1", "sms").await.unwrap();
        assert_eq!(
            p.a.fraud_window("t", "+44740", NOW - 6000).await.unwrap(),
            (3, 1)
        );
        assert_eq!(
            p.a.fraud_window("t", "+44740", NOW - 100).await.unwrap(),
            (2, 1)
        );
        assert_eq!(p.a.fraud_window("u", "+44740", 0).await.unwrap(), (0, 0));
        let flag = FlaggedPrefix {
            tenant: "t".into(),
            prefix: "+44740".into(),
            country: Some("GB".into()),
            blocked: true,
            sends: 3,
            checks: 1,
            since: NOW,
        };
        let (x, y) = tokio::join!(p.a.flag_prefix(&flag), p.b.flag_prefix(&flag));
        assert!(x.unwrap() ^ y.unwrap(), "{}: flagged once", p.name);
        assert_eq!(
            p.b.flagged_prefix("t", "+44740").await.unwrap(),
            Some(flag.clone())
        );
        assert_eq!(
            p.a.blocked_prefixes_by_tenant().await.unwrap(),
            vec![("t".to_string(), 1)]
        );
        let monitor = FlaggedPrefix {
            blocked: false,
            ..flag
        };
        assert!(
            p.a.flag_prefix(&monitor).await.unwrap(),
            "a mode change is a change"
        );
        assert_eq!(p.a.flagged_prefixes("t").await.unwrap(), vec![monitor]);
        assert!(p.b.unflag_prefix("t", "+44740").await.unwrap());
        assert!(!p.b.unflag_prefix("t", "+44740").await.unwrap());
        assert_eq!(
            p.a.fraud_window("t", "+44740", 0).await.unwrap(),
            (0, 0),
            "figures forgotten"
        );
    }
}
