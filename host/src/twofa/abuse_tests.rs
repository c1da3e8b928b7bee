//! Failure locks and the pumping guard with time moved by a `TestClock`:
//! the lock's doubling delay, the guard's sliding window. The real
//! `TwoFactor` over SQLite; codes arrive at a loopback webhook.

use std::time::Duration;

use super::tests::{Fixture, SEND_TO, with_code};
use super::{Lock, Supplied, TwoFaError};
use crate::domain::{Method, TenantName, VerificationStatus};
use crate::store::UserRow;

/// Asks for a code, then sends `n` wrong ones; what the last one answered.
async fn wrong_codes(f: &mut Fixture, user: &UserRow, n: usize) -> TwoFaError {
    let mut last = None;
    for _ in 0..n {
        let e = f
            .twofa
            .require(user, &with_code("000000x"), &f.caller, false)
            .await
            .unwrap_err();
        last = Some(e);
    }
    last.expect("n > 0")
}

fn is_max_attempts(e: &TwoFaError) -> bool {
    matches!(e, TwoFaError::MaxAttempts(_))
}

/// Asks for a fresh code and returns it (sends it through the webhook);
/// codes sent earlier are dropped.
async fn fresh_code(f: &mut Fixture, user: &UserRow) -> String {
    while !f.hook.nothing_more() {}
    let none = Supplied::default();
    let asked = f.twofa.require(user, &none, &f.caller, false);
    match asked.await {
        Err(TwoFaError::Required(d)) if d.code_generated => f.hook.next_code().await,
        other => panic!("expected a fresh code, got {other:?}"),
    }
}

const LIMITS: &str = "[limits]\nmax_consecutive_failures = 3\nmax_check_attempts = 2\n\
                      checks_per_user_per_minute = 1000\nsends_per_destination = 1000\n";

#[tokio::test]
async fn a_lock_runs_out_after_lockout_minutes_and_the_next_lasts_twice_as_long() {
    let mut f = Fixture::new(&format!("{LIMITS}lockout_minutes = 10\n")).await;
    let user = f.user_on_url_channel().await;
    fresh_code(&mut f, &user).await;
    // "000000x" normalises to a wrong code; the dead code is replaced, so
    // the wrong codes spread over several codes.
    let third = wrong_codes(&mut f, &user, 3).await;
    assert!(is_max_attempts(&third), "{third:?}");
    // The third check found the second code dead and sent a third.
    f.hook.next_code().await;
    // Locked: no code is sent, and none is looked at.
    let asked = f
        .twofa
        .require(&user, &Supplied::default(), &f.caller, false)
        .await;
    assert!(matches!(&asked, Err(e) if is_max_attempts(e)), "{asked:?}");
    assert!(f.hook.nothing_more(), "a locked method sends no code");

    f.clock.advance(Duration::from_secs(10 * 60 - 1));
    let still = f
        .twofa
        .require(&user, &with_code("1"), &f.caller, false)
        .await;
    assert!(matches!(&still, Err(e) if is_max_attempts(e)), "{still:?}");
    f.clock.advance(Duration::from_secs(1));
    let code = fresh_code(&mut f, &user).await;

    // Three more failures lock it again, now for 20 minutes.
    let again = wrong_codes(&mut f, &user, 3).await;
    assert!(is_max_attempts(&again), "{again:?}");
    f.clock.advance(Duration::from_secs(10 * 60));
    let still = f
        .twofa
        .require(&user, &with_code(&code), &f.caller, false)
        .await;
    assert!(matches!(&still, Err(e) if is_max_attempts(e)), "{still:?}");
    f.clock.advance(Duration::from_secs(10 * 60));
    let code = fresh_code(&mut f, &user).await;
    f.twofa
        .require(&user, &with_code(&code), &f.caller, false)
        .await
        .unwrap();
    // The success cleared the count and the lock history.
    assert_eq!(
        f.store.failure_count("user:default:u1:url").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn without_lockout_minutes_only_an_unlock_ends_a_lock() {
    let mut f = Fixture::new(LIMITS).await;
    let user = f.user_on_url_channel().await;
    fresh_code(&mut f, &user).await;
    assert!(is_max_attempts(&wrong_codes(&mut f, &user, 3).await));
    f.clock.advance(Duration::from_secs(365 * 24 * 3600));
    let still = f
        .twofa
        .require(&user, &with_code("1"), &f.caller, false)
        .await;
    assert!(matches!(&still, Err(e) if is_max_attempts(e)), "{still:?}");
    let url = Method::parse("url").unwrap();
    assert_eq!(f.twofa.unlock(&user, Some(&Method::Totp)).await.unwrap(), 0);
    assert_eq!(f.twofa.unlock(&user, Some(&url)).await.unwrap(), 1);
    let code = fresh_code(&mut f, &user).await;
    f.twofa
        .require(&user, &with_code(&code), &f.caller, false)
        .await
        .unwrap();
}

#[tokio::test]
async fn verify_failures_count_per_destination_across_verifications() {
    let mut f = Fixture::new(LIMITS).await;
    let tenant = TenantName::default_tenant();
    let try_start = |to: &'static str| {
        let (twofa, caller, tenant) = (f.twofa.clone(), f.caller.clone(), tenant.clone());
        async move {
            twofa
                .start_verification(&tenant, "url", to, None, None, &caller)
                .await
        }
    };
    let start = |to: &'static str| {
        let started = try_start(to);
        async move { started.await.unwrap() }
    };
    // Two wrong codes end a verification (max_check_attempts = 2); the
    // third failure, on a new verification, locks the destination.
    let v1 = start(SEND_TO).await;
    f.hook.next_code().await;
    for want in [
        VerificationStatus::Pending,
        VerificationStatus::MaxAttemptsReached,
    ] {
        let v = f
            .twofa
            .check_verification(&tenant, &v1.id, "1", &f.caller)
            .await;
        assert_eq!(v.unwrap().status, want);
    }
    let v2 = start(SEND_TO).await;
    f.hook.next_code().await;
    let v = f
        .twofa
        .check_verification(&tenant, &v2.id, "1", &f.caller)
        .await;
    assert_eq!(v.unwrap().status, VerificationStatus::MaxAttemptsReached);
    // Locked: a new verification gets no code at all, and says until when
    // (never by itself: no lockout_minutes here).
    let refused = try_start(SEND_TO).await;
    assert!(
        matches!(refused, Err(TwoFaError::Locked(Lock { retry_after: None }))),
        "{refused:?}"
    );
    // Another destination is not affected.
    let other = start("other@example.com").await;
    let code = f.hook.next_code().await;
    let v = f
        .twofa
        .check_verification(&tenant, &other.id, &code, &f.caller)
        .await;
    assert_eq!(v.unwrap().status, VerificationStatus::Approved);
}

/// An SMS gateway posting `token` (the code) and `phone` to the webhook.
const SMS: &str = "[[sms_gateway]]\nname = \"sms\"\nkind = \"http\"\nurl = \"{hook}\"\n\
                   http_method = \"POST\"\nsend_to_type = \"none\"\n\
                   options = { token = \"{otp}\", phone = \"{phone}\" }\n\
                   [limits]\nsends_per_destination = 1000\n";

#[tokio::test]
async fn the_guard_window_slides_and_an_unblock_starts_afresh() {
    let fraud = "[fraud]\nmin_sends = 3\nmin_conversion_percent = 50\nwindow_minutes = 30\n";
    let mut f = Fixture::new(&format!("{SMS}{fraud}")).await;
    let tenant = TenantName::default_tenant();
    let send = |n: u32| {
        let (twofa, caller, tenant) = (f.twofa.clone(), f.caller.clone(), tenant.clone());
        async move {
            let to = format!("+4474001234{n:02}");
            twofa
                .start_verification(&tenant, "sms", &to, None, None, &caller)
                .await
        }
    };
    // Three unchecked sends to +44740…: the fourth is refused …
    for n in 0..3 {
        send(n).await.unwrap();
        f.hook.next_code().await;
    }
    match send(3).await {
        Err(TwoFaError::DestinationBlocked {
            country, prefix, ..
        }) => {
            assert_eq!(
                (country.as_deref(), prefix.as_str()),
                (Some("GB"), "+44740")
            );
        }
        other => panic!("expected a block, got {other:?}"),
    }
    assert!(f.hook.nothing_more(), "no code was sent");
    // … and stays refused after the window: a block is lifted by an operator.
    f.clock.advance(Duration::from_secs(31 * 60));
    assert!(send(4).await.is_err());
    f.twofa.unblock_prefix(&tenant, "+44740").await.unwrap();
    send(5).await.unwrap();
    f.hook.next_code().await;

    // Sends that slid out of the window no longer count.
    for n in 6..8 {
        send(n).await.unwrap();
        f.hook.next_code().await;
    }
    f.clock.advance(Duration::from_secs(31 * 60));
    send(8).await.unwrap();
    f.hook.next_code().await;
    // Checked codes keep a prefix open.
    for n in 9..12 {
        let v = send(n).await.unwrap();
        let code = f.hook.next_code().await;
        let v = f
            .twofa
            .check_verification(&tenant, &v.id, &code, &f.caller)
            .await;
        assert_eq!(v.unwrap().status, VerificationStatus::Approved);
    }
    send(12).await.unwrap();
}
