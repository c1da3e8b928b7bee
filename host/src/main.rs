//! `postern`: delivery and checking of one-time 2FA codes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use postern::config::{self, Config};
use postern::delivery::queue::Enqueue;
use postern::delivery::{self, Message};
use postern::domain::TenantName;
use postern::{api, app, crypto, store};

#[derive(Parser)]
#[command(
    name = "postern",
    version,
    about = "Delivers and checks one-time 2FA codes"
)]
struct Cli {
    /// Config file (default: ./postern.toml when present, else the embedded defaults).
    /// Long form `--config-file`: `plugin test --config k=v` is a channel value.
    #[arg(short = 'c', long = "config-file", global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Config file tasks.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// One real delivery through a configured channel, printing each attempt.
    SendTest {
        #[arg(long)]
        channel: String,
        #[arg(long = "to", value_name = "ADDR")]
        to: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Stop waiting for retries after this many seconds (the delivery
        /// stays queued for the server's workers).
        #[arg(long, default_value_t = 60)]
        max_wait: u64,
    },
    /// Tenant tasks, offline.
    Tenant {
        #[command(subcommand)]
        action: TenantAction,
    },
    /// Admin token tasks, offline.
    AdminToken {
        #[command(subcommand)]
        action: AdminTokenAction,
    },
    /// Plugin tasks, offline.
    Plugin {
        #[command(subcommand)]
        action: PluginAction,
    },
}

#[derive(Subcommand)]
enum PluginAction {
    /// Validate a component against the plugin world and print its describe().
    Check { file: PathBuf },
    /// Make an Ed25519 signing key pair: OUT.key (secret) and OUT.pub.
    Keygen {
        #[arg(long, default_value = "postern-plugin")]
        out: PathBuf,
    },
    /// Sign a component with a secret key file; writes FILE.sig.
    Sign {
        file: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run describe, validate-recipient and one deliver in the server's sandbox.
    Test(postern::plugin::author::TestArgs),
    /// Write a ready plugin project from the templates.
    New(postern::plugin::author::NewArgs),
    /// Check FILE.sig (or --sig) against [plugins] trusted_keys and --key.
    Verify {
        file: PathBuf,
        #[arg(long)]
        sig: Option<PathBuf>,
        /// A trusted public key, or a file holding one (repeatable).
        #[arg(long = "key")]
        keys: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Parse and validate the config; no side effects.
    Check,
}

#[derive(Subcommand)]
enum TenantAction {
    /// Create a tenant and print its API key (shown once).
    Create { name: String },
    /// List tenants.
    List,
}

#[derive(Subcommand)]
enum AdminTokenAction {
    /// Replace the stored admin token and print the new one.
    Rotate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&std::path::Path>) -> Result<config::Loaded> {
    let loaded = Config::load(path, std::env::vars())?;
    Ok(loaded)
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("POSTERN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"))
        // rusmpp logs whole PDUs (a bind's password) at debug level: never.
        .add_directive("rusmpp=info".parse().expect("static directive"))
        .add_directive("rusmppc=info".parse().expect("static directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    // Keys and signatures are made without a config.
    if let Command::Plugin { action } = &cli.command
        && let Some(done) = plugin_offline(action)
    {
        return Ok(print_outcome(done));
    }
    let loaded = match load_config(cli.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    match cli.command {
        Command::Config {
            action: ConfigAction::Check,
        } => config_check(loaded).await,
        Command::Serve => serve(loaded).await,
        Command::SendTest {
            channel,
            to,
            tenant,
            max_wait,
        } => send_test(loaded.config, &channel, &to, &tenant, max_wait).await,
        Command::Tenant { action } => tenant_task(loaded.config, action).await,
        Command::Plugin {
            action: PluginAction::Verify { file, sig, keys },
        } => Ok(print_outcome(plugin_verify(
            &loaded.config,
            &file,
            sig,
            &keys,
        ))),
        Command::Plugin { action } => match action {
            PluginAction::Check { file } => plugin_check(&loaded.config, &file).await,
            PluginAction::Test(a) => plugin_test(&loaded.config, &a).await,
            other => Ok(print_outcome(
                plugin_offline(&other).unwrap_or(Err("unknown plugin task".into())),
            )),
        },
        Command::AdminToken {
            action: AdminTokenAction::Rotate,
        } => rotate_admin_token(loaded.config).await,
    }
}

/// `postern config check`. Building the channels checks what parsing cannot
/// (ca_file, regexes, plugin files, compiled in memory) without any network
/// traffic or writes.
async fn config_check(loaded: config::Loaded) -> Result<ExitCode> {
    let config = loaded.config;
    let plugins = if config.channel.is_empty() {
        None
    } else {
        let runtime = postern::plugin::PluginRuntime::new(&config.plugins, None)
            .map_err(|e| anyhow::anyhow!("[plugins]: {e}"))?;
        match postern::plugin::FileChannelPlugins::load(&config, &runtime).await {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    };
    let built = delivery::file_channels::file_channels(&config, &|c| match &plugins {
        Some(p) => p.sender(c),
        None => Ok::<_, String>(std::sync::Arc::new(NoSend(c.name.clone()))),
    });
    if let Err(e) = built {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(2));
    }
    for k in &loaded.unknown_keys {
        println!("warning: unknown key `{k}` ignored");
    }
    // Every template was rendered once while loading; long texts warn.
    for w in config::templates::warnings(&config) {
        println!("warning: {w}");
    }
    println!("{}: OK", loaded.source);
    Ok(ExitCode::SUCCESS)
}

async fn serve(loaded: config::Loaded) -> Result<ExitCode> {
    init_logging(&loaded.config.server.log_format);
    for k in &loaded.unknown_keys {
        tracing::warn!(key = %k, "unknown config key ignored");
    }
    tracing::info!(source = %loaded.source, "config loaded");
    let app = app::App::build_for(loaded.config, delivery::queue::Role::Server).await?;
    app::serve(app).await?;
    Ok(ExitCode::SUCCESS)
}

async fn tenant_task(config: Config, action: TenantAction) -> Result<ExitCode> {
    let app = app::App::build(config).await?;
    match action {
        TenantAction::Create { name } => {
            let name = TenantName::parse(&name).map_err(anyhow::Error::msg)?;
            let key = crypto::random_token("ptk_");
            let key_hash = crypto::sha256_hex(key.as_bytes());
            match app
                .store
                .create_tenant(name.as_str(), Some(&key_hash), app.clock.now_ms())
                .await
            {
                Ok(()) => {
                    println!("tenant `{name}` created");
                    println!("API key (shown once, stored hashed): {key}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(store::StoreError::Conflict) => {
                    eprintln!("error: tenant `{name}` already exists");
                    Ok(ExitCode::from(1))
                }
                Err(e) => Err(e.into()),
            }
        }
        TenantAction::List => {
            for t in app.store.list_tenants().await? {
                println!("{}\t{}", t.name, store::rfc3339(t.created_at));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn plugin_check(config: &Config, file: &std::path::Path) -> Result<ExitCode> {
    match postern::plugin::check_file(&config.plugins, file).await {
        Ok(report) => {
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => {
            eprintln!("error: {reason}");
            Ok(ExitCode::from(1))
        }
    }
}

async fn plugin_test(config: &Config, a: &postern::plugin::author::TestArgs) -> Result<ExitCode> {
    match postern::plugin::author::run_test(&config.plugins, &config.server.data_dir, a).await {
        Ok(true) => Ok(ExitCode::SUCCESS),
        Ok(false) => Ok(ExitCode::from(1)),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

/// `plugin keygen` and `plugin sign`, which need no config.
fn plugin_offline(action: &PluginAction) -> Option<std::result::Result<String, String>> {
    use postern::plugin::sign_cli;
    match action {
        PluginAction::Keygen { out } => Some(sign_cli::keygen(out)),
        PluginAction::New(a) => Some(postern::plugin::author::new_project(a)),
        PluginAction::Sign { file, key, out } => Some(sign_cli::sign(file, key, out.as_deref())),
        _ => None,
    }
}

/// Prints an offline command's answer: stdout and 0, or stderr and 1.
fn print_outcome(done: std::result::Result<String, String>) -> ExitCode {
    match done {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("error: {reason}");
            ExitCode::from(1)
        }
    }
}

fn plugin_verify(
    config: &Config,
    file: &std::path::Path,
    sig: Option<PathBuf>,
    keys: &[String],
) -> std::result::Result<String, String> {
    let mut trusted = config.plugins.trusted_keys.clone();
    for k in keys {
        trusted.push(postern::plugin::sign_cli::public_key_arg(k)?);
    }
    postern::plugin::sign_cli::verify(file, sig.as_deref(), &trusted)
}

async fn rotate_admin_token(config: Config) -> Result<ExitCode> {
    let app = app::App::build(config).await?;
    if app.config.server.admin_token.is_some() {
        eprintln!("note: server.admin_token is set in the config and takes precedence");
    }
    let token = app.rotate_admin_token().await?;
    println!("new admin token (shown once, stored hashed): {token}");
    Ok(ExitCode::SUCCESS)
}

/// Stands in for plugin senders during `config check`.
struct NoSend(String);

#[async_trait::async_trait]
impl delivery::Sender for NoSend {
    fn kind(&self) -> &'static str {
        "plugin"
    }
    async fn send(&self, _m: &Message) -> delivery::SendOutcome {
        delivery::SendOutcome::permanent(format!("{}: not sent during config check", self.0))
    }
}

async fn send_test(
    config: Config,
    channel: &str,
    to: &str,
    tenant: &str,
    max_wait: u64,
) -> Result<ExitCode> {
    let tenant = TenantName::parse(tenant).map_err(anyhow::Error::msg)?;
    let ttl = config.api.two_fa_token_ttl_seconds;
    let code_len = config.limits.code_length;
    let app = app::App::build(config).await?;
    let code = api::deliveries::random_code(code_len);
    let message = Message {
        send_to: to.to_string(),
        // Rendered by the channel before the attempt, in its default locale.
        text: String::new(),
        code,
        ttl_seconds: ttl,
        username: "postern-test".into(),
        user_agent: Some(format!("postern-cli/{}", env!("CARGO_PKG_VERSION"))),
        remote_address: None,
        locale: None,
        email: None,
    };
    let record = app
        .queue
        .submit(Enqueue {
            tenant: tenant.clone(),
            channel: channel.to_string(),
            message,
            username: None,
            expires_at: app.clock.now_ms() + i64::from(ttl) * 1000,
            alternates: BTreeMap::new(),
        })
        .await
        .context("send-test")?;
    follow(&app, &tenant, record, max_wait).await
}

/// Prints each attempt of a `send-test` delivery, working it from this
/// process until it ends or `max_wait` seconds pass.
async fn follow(
    app: &app::App,
    tenant: &TenantName,
    record: store::DeliveryRecord,
    max_wait: u64,
) -> Result<ExitCode> {
    let id = record.id.clone();
    let mut printed = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(max_wait);
    let mut last = record;
    loop {
        for a in &last.attempts[printed..] {
            println!(
                "attempt {}: {} {} ({} ms) {}",
                printed + 1,
                a.at,
                a.outcome,
                a.duration_ms,
                a.detail
            );
            printed += 1;
        }
        if last.status != "queued" && last.status != "sending" {
            break;
        }
        if std::time::Instant::now() >= deadline {
            println!(
                "still {} after {max_wait} s; a running server will continue it",
                last.status
            );
            return Ok(ExitCode::from(1));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.queue.attempt_one(&id).await?;
        last = app
            .store
            .get_delivery(tenant.as_str(), &id)
            .await?
            .context("delivery vanished")?;
    }
    println!(
        "delivery {id}: {} via {} to {}",
        last.status, last.channel, last.to
    );
    Ok(if last.status == "delivered" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
