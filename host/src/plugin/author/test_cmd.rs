//! `postern plugin test FILE.wasm --to ADDR [--config k=v]… [--secret k=v]…
//! [--allow-host H]… [--replay FILE.json]`: one run of describe,
//! validate-recipient and deliver under the `[plugins]` limits, in the same
//! sandbox (runtime, egress policy, limits) a server gives a channel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::report::Report;
use super::{key_value, read};
use crate::config::PluginsConfig;
use crate::delivery::{Message, OutcomeClass, Sender};
use crate::netguard::AllowList;
use crate::plugin::outbound::{ReplayFile, Tools};
use crate::plugin::{ChannelSandbox, PluginRuntime, PluginSender};
use crate::secret::Secret;

/// The code every test delivery carries.
pub const TEST_CODE: &str = "123456";

#[derive(Debug, Clone, clap::Args)]
pub struct TestArgs {
    /// The component to run.
    pub file: PathBuf,
    /// The recipient (send-to) of the test delivery.
    #[arg(long)]
    pub to: String,
    /// A channel config value the plugin reads (repeatable).
    // `id`: `-c/--config FILE` is the global option's.
    #[arg(long = "config", id = "channel_config", value_name = "KEY=VALUE", value_parser = key_value)]
    pub config: Vec<(String, String)>,
    /// A channel secret (repeatable); redacted wherever it would show.
    #[arg(long = "secret", value_name = "KEY=VALUE", value_parser = key_value)]
    pub secrets: Vec<(String, String)>,
    /// An allowedHosts entry (repeatable): `host`, `host:port`, `*.suffix`, `http://…`.
    #[arg(long = "allow-host", value_name = "H")]
    pub allow_hosts: Vec<String>,
    /// Answer outbound requests from this file of recorded responses
    /// (`{"responses": [{"status": 200, "headers": {}, "body": …}]}`) instead of the network.
    #[arg(long, value_name = "FILE.json")]
    pub replay: Option<PathBuf>,
}

fn message(to: &str) -> Message {
    Message {
        send_to: to.to_string(),
        code: TEST_CODE.into(),
        ttl_seconds: 600,
        text: format!("Your verification code is {TEST_CODE}. It expires in 10 minutes."),
        username: "plugin-test".into(),
        user_agent: Some("postern plugin test".into()),
        remote_address: Some("203.0.113.1".into()),
        locale: None,
        email: None,
    }
}

fn sandbox(a: &TestArgs) -> Result<ChannelSandbox, String> {
    let allow_list = AllowList::parse(&a.allow_hosts).map_err(|e| format!("--allow-host: {e}"))?;
    let secrets: BTreeMap<String, Secret> = a
        .secrets
        .iter()
        .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
        .collect();
    Ok(ChannelSandbox {
        name: "plugin-test".into(),
        config: a.config.iter().cloned().collect(),
        secrets,
        allow_list,
        limits: Default::default(),
    })
}

fn replay(a: &TestArgs) -> Result<Option<ReplayFile>, String> {
    let Some(path) = &a.replay else {
        return Ok(None);
    };
    let text = read(path)?;
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| format!("{}: not a replay file: {e}", path.display()))
}

/// Runs the test and prints the report to stdout; `Ok(true)` only if the
/// delivery was delivered. `Err` is a usage or load problem. `data_dir`:
/// the server's, whose compile cache is used when it exists (a big guest
/// compiles in tens of seconds; the same bytes load in milliseconds).
pub async fn run_test(
    limits: &PluginsConfig,
    data_dir: &Path,
    a: &TestArgs,
) -> Result<bool, String> {
    let bytes = read(&a.file)?;
    let secret_values: Vec<String> = a.secrets.iter().map(|(_, v)| v.clone()).collect();
    let report = Report::new(secret_values.clone());
    let cache = data_dir.is_dir().then_some(data_dir);
    let runtime = PluginRuntime::new(limits, cache).map_err(|e| format!("[plugins]: {e}"))?;
    let started = Instant::now();
    let plugin = runtime
        .load(bytes)
        .await
        .map_err(|e| format!("{} is not a valid postern plugin: {e}", a.file.display()))?;
    report.describe(&plugin, started.elapsed());
    let channel = sandbox(a)?;
    if let Err(e) =
        crate::plugin::startup::check_required_keys(&plugin, &channel.config, &channel.secrets)
    {
        report.note(&format!("warning: {e}"));
    }
    let tools = Arc::new(Tools::new(replay(a)?, secret_values));
    let sender = PluginSender::with_tools(&runtime, plugin, &channel, tools.clone());
    let valid = sender.validate_recipient(&a.to).await;
    report.validated(&a.to, &valid);
    if let Err(why) = valid {
        report.outcome_line(
            OutcomeClass::Permanent,
            &format!("invalid recipient: {why}"),
        );
        return Ok(false);
    }
    let outcome = sender.send(&message(&a.to)).await;
    report.delivered(&tools.exchanges(), &outcome);
    Ok(outcome.class == OutcomeClass::Delivered)
}
