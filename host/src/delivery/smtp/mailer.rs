//! A mail relay through lettre: implicit TLS (`secure = true`), STARTTLS
//! (`opportunistic | required | off`), AUTH when credentials are set. Used by
//! the `smtp` kind and by `sms-smtp`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::config::{SmtpConfig, StartTls};
use crate::delivery::SendOutcome;
use crate::delivery::template::plain_field;
use crate::domain::EmailAddress;

/// A configured mail relay: knows how to hand one message to the server.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Set for tenant channels without `allow_private_networks`: the relay's
    /// name is resolved per connection and only a public address is dialled.
    public_only: Option<Arc<Relay>>,
}

/// How to reach the relay, kept to dial a vetted address instead of the name.
struct Relay {
    host: String,
    port: u16,
    tls: Tls,
    credentials: Option<Credentials>,
    timeout: Duration,
}

impl Relay {
    /// A transport that connects to `addr` while TLS still verifies the
    /// certificate against the configured name.
    fn transport(&self, addr: &str) -> AsyncSmtpTransport<Tokio1Executor> {
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr)
            .port(self.port)
            .tls(self.tls.clone())
            .timeout(Some(self.timeout));
        if let Some(c) = &self.credentials {
            b = b.credentials(c.clone());
        }
        b.build()
    }

    /// Resolves the relay's name and picks a public address; a name that
    /// only resolves to private, loopback or reserved addresses is refused.
    async fn vetted_transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendOutcome> {
        use crate::netguard::{ResolveError, resolve_public};
        match resolve_public(&self.host, self.port).await {
            // Never empty: resolve_public answers OnlyForbidden instead.
            Ok(addrs) => Ok(self.transport(
                &addrs
                    .first()
                    .map_or_else(String::new, |a| a.ip().to_string()),
            )),
            Err(e @ ResolveError::Lookup { .. }) => {
                Err(SendOutcome::transient(format!("SMTP server: {e}")))
            }
            Err(e @ ResolveError::OnlyForbidden { .. }) => {
                Err(SendOutcome::permanent(format!("SMTP server {e}")))
            }
        }
    }
}

impl Mailer {
    /// `public_only`: refuse relays whose name resolves to a private,
    /// loopback or reserved address (tenant channels).
    pub fn new(c: &SmtpConfig, public_only: bool) -> Result<Self, String> {
        let (host, port) = c.host_port()?;
        let mut tls = TlsParameters::builder(host.clone());
        if let Some(ca) = c.ca_file.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("cannot read smtp.ca_file {}: {e}", ca.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("smtp.ca_file {}: {e}", ca.display()))?;
            tls = tls.add_root_certificate(cert);
        }
        let tls = tls
            .build_rustls()
            .map_err(|e| format!("cannot set up TLS for smtp.server: {e}"))?;
        let tls = if c.secure {
            Tls::Wrapper(tls)
        } else {
            match c.starttls {
                StartTls::Opportunistic => Tls::Opportunistic(tls),
                StartTls::Required => Tls::Required(tls),
                StartTls::Off => Tls::None,
            }
        };
        let credentials = c
            .auth_username
            .as_ref()
            .filter(|u| !u.is_empty())
            .map(|user| {
                let pass = c
                    .auth_password
                    .as_ref()
                    .map(|p| p.expose().to_string())
                    .unwrap_or_default();
                Credentials::new(user.clone(), pass)
            });
        let from: Mailbox = c
            .sender_email
            .parse()
            .map_err(|e| format!("smtp.sender_email: {e}"))?;
        let relay = Relay {
            host,
            port,
            tls,
            credentials,
            timeout: Duration::from_secs(c.timeout_seconds),
        };
        // An IP literal was vetted when the channel was saved; only names
        // can change what they point at.
        let is_name = relay.host.parse::<std::net::IpAddr>().is_err();
        Ok(Self {
            transport: relay.transport(&relay.host),
            from,
            public_only: (public_only && is_name).then(|| Arc::new(relay)),
        })
    }

    async fn transport(&self) -> Result<Cow<'_, AsyncSmtpTransport<Tokio1Executor>>, SendOutcome> {
        match &self.public_only {
            None => Ok(Cow::Borrowed(&self.transport)),
            Some(relay) => relay.vetted_transport().await.map(Cow::Owned),
        }
    }

    pub async fn send(
        &self,
        to: &str,
        subject: &str,
        text: String,
        html: Option<String>,
    ) -> SendOutcome {
        let to = match EmailAddress::parse(to).and_then(|a| {
            a.as_str()
                .parse::<Mailbox>()
                .map_err(|e| format!("invalid recipient: {e}"))
        }) {
            Ok(m) => m,
            Err(e) => return SendOutcome::permanent(e),
        };
        let builder = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(plain_field(Some(subject)));
        let built = match html {
            Some(html) => builder.multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::plain(text))
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html),
                    ),
            ),
            None => builder.body(text),
        };
        let email = match built {
            Ok(e) => e,
            Err(e) => return SendOutcome::permanent(format!("cannot build message: {e}")),
        };
        let transport = match self.transport().await {
            Ok(t) => t,
            Err(refused) => return refused,
        };
        match transport.send(email).await {
            Ok(resp) => {
                let line = resp.message().collect::<Vec<_>>().join(" ");
                SendOutcome::delivered(format!("SMTP {}: {}", resp.code(), line.trim()))
            }
            Err(e) => classify(&e),
        }
    }

    /// Connects and says hello (no mail): for `/readyz`.
    pub async fn probe(&self) -> Result<(), String> {
        let transport = self.transport().await.map_err(|o| o.detail)?;
        match transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("server did not answer NOOP".into()),
            Err(e) => Err(classify(&e).detail),
        }
    }
}

/// Is a TLS failure (untrusted certificate, handshake refused) somewhere in
/// the chain? lettre reports those as connection errors.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        cur = err.source();
    }
    false
}

fn classify(e: &lettre::transport::smtp::Error) -> SendOutcome {
    let detail = format!("SMTP: {e}");
    if e.is_permanent() || e.is_tls() || e.is_client() || tls_failure(e) {
        // 5xx, certificate problems and a missing required STARTTLS will
        // not fix themselves.
        SendOutcome::permanent(detail)
    } else {
        // 4xx, timeouts, refused or dropped connections.
        SendOutcome::transient(detail)
    }
}
