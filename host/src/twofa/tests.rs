//! Tests that move time: the real `TwoFactor` over a real SQLite store in a
//! temp dir, driven by a `TestClock`. Codes travel the real way: the queue
//! makes the first attempt through the built-in URL (webhook) sender, which
//! posts rport's form to a loopback HTTP receiver the test reads them from.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{Caller, Supplied, TwoFaError, TwoFactor};
use crate::clock::{Clock, SharedClock, TestClock};
use crate::config::{ChannelConfig, Config, Source};
use crate::crypto::Keys;
use crate::delivery::file_channels::file_channels;
use crate::delivery::queue::{Enqueue, LeaseOwner, Queue, QueueSettings, Role};
use crate::delivery::registry::Registry;
use crate::delivery::retry::Backoff;
use crate::delivery::{Message, Sender};
use crate::domain::{Method, MethodSlot, TenantName, VerificationStatus};
use crate::metrics::Metrics;
use crate::store::{self, MethodRow, Store, UserRow};

pub(super) const TTL_SECONDS: u64 = 60;
pub(super) const SEND_TO: &str = "ivy@example.com";

/// A webhook receiver on 127.0.0.1: each POST's `token` field comes out of
/// `codes`; every request is answered with `status` (200 unless changed).
pub(super) struct Receiver {
    url: String,
    codes: mpsc::UnboundedReceiver<String>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, codes) = mpsc::unbounded_channel();
        let status = Arc::new(AtomicU16::new(200));
        let answer = status.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let status = answer.load(Ordering::SeqCst);
                tokio::spawn(serve_one(stream, tx.clone(), status));
            }
        });
        Self { url, codes, status }
    }

    pub(super) async fn next_code(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.codes.recv())
            .await
            .expect("a code within 10 s")
            .expect("the receiver runs")
    }

    pub(super) fn nothing_more(&mut self) -> bool {
        self.codes.try_recv().is_err()
    }
}

/// Reads one HTTP/1.1 request (headers, then `Content-Length` bytes).
async fn serve_one(mut stream: TcpStream, tx: mpsc::UnboundedSender<String>, status: u16) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let body_at = loop {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..body_at]).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < body_at + len {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let form: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&buf[body_at..]).unwrap_or_default();
    if let Some((_, token)) = form.into_iter().find(|(k, _)| k == "token") {
        let _ = tx.send(token);
    }
    let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = stream.write_all(answer.as_bytes()).await;
}

pub(super) struct Fixture {
    pub(super) twofa: Arc<TwoFactor>,
    queue: Arc<Queue>,
    pub(super) store: Arc<dyn Store>,
    pub(super) clock: Arc<TestClock>,
    pub(super) hook: Receiver,
    pub(super) caller: Caller,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// `extra` is appended to the config (e.g. a `[limits]` section);
    /// `{hook}` in it becomes the receiver's URL.
    pub(super) async fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let hook = Receiver::start().await;
        let toml = format!(
            "[server]\ndata_dir = {:?}\nbase_url = \"https://2fa.example.com\"\n[api]\ntwo_fa_token_delivery = \"{}\"\n\
             two_fa_send_to_type = \"email\"\ntwo_fa_token_ttl_seconds = {TTL_SECONDS}\n{extra}",
            dir.path().display().to_string(),
            hook.url
        )
        .replace("{hook}", &hook.url);
        let config = Arc::new(
            Config::from_toml(&toml, Source::Embedded, std::iter::empty())
                .unwrap()
                .config,
        );
        let clock = TestClock::new();
        let shared: SharedClock = clock.clone();
        let store = store::open(&config.database_url()).await.unwrap();
        let tenant = TenantName::default_tenant();
        store
            .ensure_tenant(tenant.as_str(), clock.now_ms())
            .await
            .unwrap();
        let registry = Arc::new(Registry::default());
        let no_plugins = |_: &ChannelConfig| -> Result<Arc<dyn Sender>, String> {
            Err("no plugins in these tests".into())
        };
        for c in file_channels(&config, &no_plugins).unwrap() {
            registry.insert(&tenant, c);
        }
        let keys = Keys::from_master(&[7; 32]);
        let queue = Queue::new(
            store.clone(),
            registry.clone(),
            keys.clone(),
            Arc::new(Metrics::new()),
            QueueSettings {
                backoff: Backoff {
                    base_ms: 1_000,
                    max_ms: 10_000,
                },
                lease: Duration::from_secs(30),
                workers: 2,
                tenant_per_minute: 1_000,
                tenant_concurrency: 2,
            },
            shared.clone(),
            LeaseOwner::new(&crate::host_id::HostId::random(), Role::Cli),
        );
        let twofa = TwoFactor::new(store.clone(), keys, queue.clone(), registry, config, shared);
        Self {
            twofa: Arc::new(twofa),
            queue,
            store,
            clock,
            hook,
            caller: Caller {
                ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
                user_agent: Some("tests".into()),
                accept_language: None,
            },
            _dir: dir,
        }
    }

    /// A user whose one method is the `url` channel, sending to `SEND_TO`.
    pub(super) async fn user_on_url_channel(&self) -> UserRow {
        let user = UserRow {
            tenant: TenantName::default_tenant().to_string(),
            id: "u1".into(),
            username: "ivy".into(),
            password_hash: None,
            email: None,
            email_verified: false,
            name: None,
            default_method: Some("url".into()),
            created_at: self.clock.now_ms(),
            language: None,
        };
        self.store.create_user(&user).await.unwrap();
        let row = MethodRow {
            method: MethodSlot::parse("url").unwrap(),
            send_to: Some(SEND_TO.into()),
        };
        self.store
            .put_method(&user.tenant, &user.id, &row, self.clock.now_ms())
            .await
            .unwrap();
        user
    }

    fn past_the_ttl(&self) {
        self.clock.advance(Duration::from_secs(TTL_SECONDS + 1));
    }
}

pub(super) fn with_code(code: &str) -> Supplied {
    Supplied {
        code: Some(code.into()),
        method: None,
    }
}

#[tokio::test]
async fn a_verification_expires_after_its_ttl() {
    let mut f = Fixture::new("").await;
    let tenant = TenantName::default_tenant();
    let v = f
        .twofa
        .start_verification(&tenant, "url", SEND_TO, None, None, &f.caller)
        .await
        .unwrap();
    assert_eq!(v.status, VerificationStatus::Pending);
    let code = f.hook.next_code().await;

    f.clock.advance(Duration::from_secs(TTL_SECONDS - 1));
    let still = f.twofa.verification(&tenant, &v.id).await.unwrap();
    assert_eq!(still.status, VerificationStatus::Pending);

    f.clock.advance(Duration::from_secs(1));
    let later = f.twofa.verification(&tenant, &v.id).await.unwrap();
    assert_eq!(later.status, VerificationStatus::Expired);
    // The right code no longer helps: the verification is over.
    match f
        .twofa
        .check_verification(&tenant, &v.id, &code, &f.caller)
        .await
    {
        Err(TwoFaError::NotFound(m)) => assert_eq!(m, "No pending verification with this id"),
        other => panic!("expected not-found, got {other:?}"),
    }
    let stored = f.store.verification(tenant.as_str(), &v.id).await.unwrap();
    assert_eq!(stored.unwrap().status.as_str(), "expired");
}

#[tokio::test]
async fn a_code_that_expires_between_send_and_check_is_invalid_and_replaced() {
    let mut f = Fixture::new("").await;
    let user = f.user_on_url_channel().await;
    let first = match f
        .twofa
        .require(&user, &Supplied::default(), &f.caller, false)
        .await
    {
        Err(TwoFaError::Required(d)) => {
            assert_eq!(d.method, Method::parse("url").unwrap());
            assert!(d.code_generated);
            assert_eq!(d.code_count, 1);
            f.hook.next_code().await
        }
        other => panic!("expected totp-required, got {other:?}"),
    };

    f.past_the_ttl();
    // As today: the dead code is refused and a fresh one goes out.
    match f
        .twofa
        .require(&user, &with_code(&first), &f.caller, false)
        .await
    {
        Err(TwoFaError::Invalid(d)) => {
            assert!(d.code_generated, "a fresh code is sent");
            assert_eq!(d.code_count, 1);
        }
        other => panic!("expected totp-invalid, got {other:?}"),
    }
    let second = f.hook.next_code().await;
    assert!(f.hook.nothing_more());
    // The fresh code works (within its own lifetime); the old one stays dead.
    f.clock.advance(Duration::from_secs(TTL_SECONDS / 2));
    f.twofa
        .require(&user, &with_code(&second), &f.caller, false)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_live_code_is_not_resent_until_it_expires() {
    let mut f = Fixture::new("").await;
    let user = f.user_on_url_channel().await;
    let none = Supplied::default();
    let ask = || f.twofa.require(&user, &none, &f.caller, false);
    assert!(matches!(ask().await, Err(TwoFaError::Required(d)) if d.code_generated));
    f.hook.next_code().await;
    f.clock.advance(Duration::from_secs(TTL_SECONDS - 1));
    assert!(matches!(ask().await, Err(TwoFaError::Required(d)) if !d.code_generated));
    f.clock.advance(Duration::from_secs(1));
    assert!(matches!(ask().await, Err(TwoFaError::Required(d)) if d.code_generated));
    f.hook.next_code().await;
}

#[tokio::test]
async fn a_rate_window_resets() {
    let f = Fixture::new("[limits]\ncode_requests_per_minute = 2\n").await;
    let tenant = TenantName::default_tenant();
    // `sendEmailCode` for nobody: only the limits run.
    let ask = || f.twofa.send_email_code(&tenant, "nobody", &f.caller);
    ask().await.unwrap();
    ask().await.unwrap();
    match ask().await {
        Err(TwoFaError::TooManyRequests { retry_after }) => assert_eq!(retry_after, 60),
        other => panic!("expected 429, got {other:?}"),
    }
    f.clock.advance(Duration::from_secs(45));
    match ask().await {
        Err(TwoFaError::TooManyRequests { retry_after }) => assert_eq!(retry_after, 15),
        other => panic!("expected 429, got {other:?}"),
    }
    f.clock.advance(Duration::from_secs(15));
    ask().await.unwrap();
}

#[tokio::test]
async fn a_retry_that_comes_due_after_the_code_expired_is_not_sent() {
    let mut f = Fixture::new("").await;
    f.hook.status.store(503, Ordering::SeqCst);
    let tenant = TenantName::default_tenant();
    let message = Message {
        send_to: SEND_TO.into(),
        text: "code 123456".into(),
        code: "123456".into(),
        ttl_seconds: TTL_SECONDS as u32,
        username: String::new(),
        user_agent: None,
        remote_address: None,
        locale: None,
        email: None,
    };
    let first = f
        .queue
        .submit(Enqueue {
            tenant: tenant.clone(),
            channel: "url".into(),
            message,
            username: None,
            expires_at: f.clock.now_ms() + TTL_SECONDS as i64 * 1000,
            alternates: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(first.status, "queued", "a 503 is retried");
    assert_eq!(f.hook.next_code().await, "123456");

    f.past_the_ttl();
    assert!(f.queue.attempt_one(&first.id).await.unwrap());
    let after = f
        .store
        .get_delivery(tenant.as_str(), &first.id)
        .await
        .unwrap();
    let after = after.unwrap();
    assert_eq!(after.status, "expired");
    assert_eq!(after.attempts.len(), 1, "no attempt after the expiry");
    assert!(f.hook.nothing_more());
}
