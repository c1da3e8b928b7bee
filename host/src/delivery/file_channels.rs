//! The channels of the config file (they belong to the `default` tenant):
//! `email` of `[smtp]`, `pushover`, `url` (when `api.two_fa_token_delivery`
//! is a URL), each `[[sms_gateway]]` and each `[[channel]]`. Each is built by
//! its kind's folder, as tenant channels are. Errors name the config key.

use std::collections::HashMap;
use std::sync::Arc;

use super::plugin::PluginSenderFactory;
use super::recipient::{RecipientRule, SendToType};
use super::registry::Channel;
use super::sms_gateway::SmsGatewayConfig;
use super::sms_http::SmsHttpSender;
use super::sms_smtp::SmsSmtpSender;
use super::smtp::mailer::Mailer;
use super::{BuildContext, Sender, plugin, pushover, smtp, url};
use crate::config::{ApiConfig, Config, TokenDelivery};
use crate::domain::ChannelName;
use crate::messages::Messages;
use crate::secret::Secret;

/// A channel's own `send_to_type`, else `[api]`'s `two_fa_send_to_type`.
fn rule_for(
    api: &ApiConfig,
    own: Option<SendToType>,
    own_regex: Option<&str>,
    key: &str,
) -> Result<RecipientRule, String> {
    match own {
        Some(kind) => RecipientRule::from_config(kind, own_regex),
        None => {
            RecipientRule::from_config(api.two_fa_send_to_type, api.two_fa_send_to_regex.as_deref())
        }
    }
    .map_err(|e| format!("{key}: {e}"))
}

/// Every channel the file defines, in file order.
pub fn file_channels(
    cfg: &Config,
    plugin_sender: PluginSenderFactory<'_>,
) -> Result<Vec<Channel>, String> {
    let api = &cfg.api;
    let ctx = BuildContext::file(cfg.server.base_url.as_deref());
    let api_rule = || rule_for(api, None, None, "api.two_fa_send_to_regex");
    let mut out = Vec::new();
    if let Some(s) = &cfg.smtp {
        out.push(smtp::file_channel(s, &ctx)?);
    }
    if let Some(p) = &cfg.pushover {
        out.push(pushover::file_channel(p, api_rule()?, &ctx)?);
    }
    if let Some(TokenDelivery::Url(u)) = &api.two_fa_token_delivery {
        out.push(url::file_channel(u, api, api_rule()?, &ctx)?);
    }
    // `kind = "smtp"` gateways share the `[smtp]` relay.
    let mailer = match &cfg.smtp {
        Some(s) => Some(Mailer::new(s, false).map_err(|e| format!("[smtp]: {e}"))?),
        None => None,
    };
    for (i, g) in cfg.sms_gateway.iter().enumerate() {
        out.push(gateway_channel(cfg, i, g, mailer.as_ref(), &ctx)?);
    }
    for (i, c) in cfg.channel.iter().enumerate() {
        let key = format!("channel[{i}].send_to_regex");
        let rule = rule_for(api, c.send_to_type, c.send_to_regex.as_deref(), &key)?;
        out.push(plugin::file_channel(i, c, rule, plugin_sender)?);
    }
    attach_messages(cfg, &mut out)?;
    Ok(out)
}

/// Each channel's templates (`templates = …`, `[smtp] subject/body`); the
/// channels without any get the built-in messages.
fn attach_messages(cfg: &Config, channels: &mut [Channel]) -> Result<(), String> {
    let mut own: HashMap<String, Messages> = crate::config::templates::file_messages(cfg)
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    for ch in channels {
        let m = own
            .remove(ch.name.as_str())
            .unwrap_or_else(|| Messages::builtin(crate::config::templates::site(cfg)));
        ch.messages = Arc::new(m);
    }
    Ok(())
}

/// `[[sms_gateway]]` number `i`: an `sms-http`, `sms-smtp` or `sms-smpp` channel.
fn gateway_channel(
    cfg: &Config,
    i: usize,
    g: &SmsGatewayConfig,
    mailer: Option<&Mailer>,
    ctx: &BuildContext<'_>,
) -> Result<Channel, String> {
    let key = format!("sms_gateway[{i}]");
    let sender: Arc<dyn Sender> = match g.kind.as_str() {
        "http" => Arc::new(SmsHttpSender::new(g, ctx).map_err(|e| format!("{key}: {e}"))?),
        "smpp" => Arc::new(super::sms_smpp::file_sender(g, &key)?),
        _ => {
            let mailer = mailer
                .cloned()
                .ok_or_else(|| format!("{key}: kind = \"smtp\" needs [smtp]"))?;
            Arc::new(SmsSmtpSender::new(mailer, g).map_err(|e| format!("{key}: {e}"))?)
        }
    };
    let mut secrets: Vec<Secret> = g.password.iter().cloned().collect();
    if g.kind == "smtp" {
        secrets.extend(cfg.smtp.iter().flat_map(|s| s.auth_password.clone()));
    }
    // Header values (API keys) are secrets too.
    secrets.extend(g.headers.values().map(Secret::new));
    Ok(Channel {
        name: ChannelName::parse(&g.name)?,
        sender,
        rule: rule_for(
            &cfg.api,
            g.send_to_type,
            g.send_to_regex.as_deref(),
            &format!("{key}.send_to_regex"),
        )?,
        fallback: g.fallback.as_deref().map(ChannelName::parse).transpose()?,
        secrets,
        messages: Default::default(),
    })
}
