//! A small but real SMTP server on loopback: EHLO, STARTTLS, implicit TLS,
//! AUTH PLAIN/LOGIN, MAIL/RCPT/DATA. Enough for lettre; records every mail.

use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    pub tls: bool,
    pub auth_user: Option<String>,
}

impl Mail {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(self.data.as_bytes())
            .expect("parseable mail")
    }

    pub fn text(&self) -> String {
        self.parsed()
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }

    pub fn html(&self) -> String {
        self.parsed()
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }

    /// The first run of digits of `len` in the text body: the code.
    pub fn code(&self, len: usize) -> String {
        let text = self.text();
        let re = regex::Regex::new(&format!(r"\b(\d{{{len}}})\b")).unwrap();
        re.captures(&text).expect("a code in the mail")[1].to_string()
    }
}

#[derive(Clone, Default)]
pub struct SmtpOptions {
    pub starttls: Option<Arc<rustls::ServerConfig>>,
    pub implicit_tls: Option<Arc<rustls::ServerConfig>>,
    pub auth: Option<(String, String)>,
    /// Answer RCPT TO with this reply (e.g. "451 4.3.0 try later").
    pub rcpt_reply: Option<String>,
}

pub struct SmtpServer {
    pub port: u16,
    pub mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpServer {
    pub async fn start(opts: SmtpOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let m = mails.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let opts = opts.clone();
                let mails = m.clone();
                tokio::spawn(async move {
                    if let Some(cfg) = opts.implicit_tls.clone() {
                        if let Ok(tls) = TlsAcceptor::from(cfg).accept(sock).await {
                            let _ = session(tls, true, opts, mails).await;
                        }
                    } else {
                        let _ = session(sock, false, opts, mails).await;
                    }
                });
            }
        });
        Self { port, mails }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    /// The newest mail to `rcpt` and its place in arrival order, without
    /// copying the others (benchmarks poll this).
    pub fn last_to(&self, rcpt: &str) -> Option<(usize, Mail)> {
        let mails = self.mails.lock().unwrap();
        mails
            .iter()
            .enumerate()
            .rev()
            .find(|(_, m)| m.to.iter().any(|t| t == rcpt))
            .map(|(i, m)| (i, m.clone()))
    }
}

enum Next {
    Quit,
    StartTls,
}

async fn session<S: AsyncRead + AsyncWrite + Unpin + Send>(
    sock: S,
    tls: bool,
    opts: SmtpOptions,
    mails: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    let mut io = BufReader::new(sock);
    io.get_mut()
        .write_all(b"220 test.local ESMTP ready\r\n")
        .await?;
    match dialog(&mut io, tls, &opts, &mails).await? {
        Next::Quit => Ok(()),
        Next::StartTls => {
            let cfg = opts.starttls.clone().expect("starttls configured");
            let stream = io.into_inner();
            let tls_stream = TlsAcceptor::from(cfg).accept(stream).await?;
            let mut io = BufReader::new(tls_stream);
            dialog(&mut io, true, &opts, &mails).await.map(|_| ())
        }
    }
}

async fn dialog<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    tls: bool,
    opts: &SmtpOptions,
    mails: &Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<Next> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut auth_user: Option<String> = None;
    let mut line = String::new();
    loop {
        line.clear();
        if io.read_line(&mut line).await? == 0 {
            return Ok(Next::Quit);
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            let mut r = String::from("250-test.local\r\n");
            if opts.starttls.is_some() && !tls {
                r.push_str("250-STARTTLS\r\n");
            }
            if opts.auth.is_some() {
                r.push_str("250-AUTH PLAIN LOGIN\r\n");
            }
            r.push_str("250 8BITMIME\r\n");
            r
        } else if upper == "STARTTLS" && opts.starttls.is_some() && !tls {
            io.get_mut().write_all(b"220 2.0.0 go ahead\r\n").await?;
            io.get_mut().flush().await?;
            return Ok(Next::StartTls);
        } else if upper.starts_with("AUTH PLAIN") {
            let arg = cmd
                .split_whitespace()
                .nth(2)
                .unwrap_or_default()
                .to_string();
            let decoded = b64.decode(arg).unwrap_or_default();
            let parts: Vec<String> = decoded
                .split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            check_auth(opts, parts.get(1), parts.get(2), &mut auth_user)
        } else if upper.starts_with("AUTH LOGIN") {
            io.get_mut().write_all(b"334 VXNlcm5hbWU6\r\n").await?;
            let mut u = String::new();
            io.read_line(&mut u).await?;
            io.get_mut().write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            let mut p = String::new();
            io.read_line(&mut p).await?;
            let u = String::from_utf8_lossy(&b64.decode(u.trim()).unwrap_or_default()).into_owned();
            let p = String::from_utf8_lossy(&b64.decode(p.trim()).unwrap_or_default()).into_owned();
            check_auth(opts, Some(&u), Some(&p), &mut auth_user)
        } else if upper.starts_with("MAIL FROM:") {
            if opts.auth.is_some() && auth_user.is_none() {
                "530 5.7.0 authentication required\r\n".into()
            } else {
                from = addr(&cmd[10..]);
                to.clear();
                "250 2.1.0 ok\r\n".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            if let Some(r) = &opts.rcpt_reply {
                format!("{r}\r\n")
            } else {
                to.push(addr(&cmd[8..]));
                "250 2.1.5 ok\r\n".into()
            }
        } else if upper == "DATA" {
            io.get_mut().write_all(b"354 end with .\r\n").await?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if io.read_line(&mut l).await? == 0 {
                    return Ok(Next::Quit);
                }
                if l == ".\r\n" || l == ".\n" {
                    break;
                }
                let l = l.strip_prefix('.').map(str::to_string).unwrap_or(l);
                data.push_str(&l);
            }
            mails.lock().unwrap().push(Mail {
                from: from.clone(),
                to: to.clone(),
                data,
                tls,
                auth_user: auth_user.clone(),
            });
            "250 2.0.0 queued as TEST1\r\n".into()
        } else if upper == "QUIT" {
            io.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(Next::Quit);
        } else if upper == "RSET" || upper == "NOOP" {
            "250 ok\r\n".into()
        } else {
            "502 5.5.2 unknown command\r\n".into()
        };
        io.get_mut().write_all(reply.as_bytes()).await?;
        io.get_mut().flush().await?;
    }
}

fn check_auth(
    opts: &SmtpOptions,
    user: Option<&String>,
    pass: Option<&String>,
    auth_user: &mut Option<String>,
) -> String {
    match (&opts.auth, user, pass) {
        (Some((u, p)), Some(gu), Some(gp)) if u == gu && p == gp => {
            *auth_user = Some(u.clone());
            "235 2.7.0 authenticated\r\n".into()
        }
        _ => "535 5.7.8 bad credentials\r\n".into(),
    }
}

fn addr(s: &str) -> String {
    s.trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default()
        .to_string()
}
