//! What spans the channel sections: every channel name used once, the
//! target of `api.two_fa_token_delivery`, and the fallback graph.

use super::Config;
use super::api::TokenDelivery;
use super::check::{ConfigError, check_name, invalid};
use crate::delivery::fallback;

/// The channel names of the file, each with the key that defined it.
#[derive(Default)]
struct Names(Vec<(String, String)>);

impl Names {
    fn add(&mut self, name: &str, key: String) -> Result<(), ConfigError> {
        if let Some((_, first)) = self.0.iter().find(|(n, _)| n == name) {
            return Err(invalid(
                key,
                format!("channel name `{name}` is already used by `{first}`"),
            ));
        }
        self.0.push((name.to_string(), key));
        Ok(())
    }

    fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
}

/// Checks the channel sections together; each section checks its own keys.
pub fn validate(cfg: &Config) -> Result<(), ConfigError> {
    let mut names = Names::default();
    if cfg.smtp.is_some() {
        names.add("email", "smtp".into())?;
    }
    if cfg.pushover.is_some() {
        names.add("pushover", "pushover".into())?;
    }
    if let Some(d) = &cfg.api.two_fa_token_delivery {
        token_delivery(cfg, d, &mut names)?;
    }
    for (i, g) in cfg.sms_gateway.iter().enumerate() {
        check_name(&format!("sms_gateway[{i}].name"), &g.name)?;
        names.add(&g.name, format!("sms_gateway[{i}]"))?;
        super::sms_gateway::validate(g, &format!("sms_gateway[{i}]"), cfg.smtp.is_some())?;
    }
    for (i, c) in cfg.channel.iter().enumerate() {
        check_name(&format!("channel[{i}].name"), &c.name)?;
        names.add(&c.name, format!("channel[{i}]"))?;
        c.validate(&format!("channel[{i}]"))?;
    }
    fallbacks(cfg, &names)
}

/// `api.two_fa_token_delivery` must name a channel the file defines.
fn token_delivery(cfg: &Config, d: &TokenDelivery, names: &mut Names) -> Result<(), ConfigError> {
    const KEY: &str = "api.two_fa_token_delivery";
    match d {
        TokenDelivery::Email if cfg.smtp.is_none() => {
            Err(invalid(KEY, "`smtp` needs an [smtp] section"))
        }
        TokenDelivery::Pushover if cfg.pushover.is_none() => {
            Err(invalid(KEY, "`pushover` needs a [pushover] section"))
        }
        TokenDelivery::Email | TokenDelivery::Pushover => Ok(()),
        TokenDelivery::Url(url) => {
            crate::delivery::url::config::check_file_url(
                KEY,
                url,
                cfg.server.base_url.is_some(),
                cfg.api.url_allow_http,
            )?;
            names.add("url", KEY.into())
        }
        TokenDelivery::Plugin(ch) if !cfg.channel.iter().any(|c| &c.name == ch) => {
            Err(invalid(KEY, format!("no [[channel]] named `{ch}`")))
        }
        TokenDelivery::Gateway(other) if !cfg.sms_gateway.iter().any(|g| &g.name == other) => {
            Err(invalid(
                KEY,
                format!(
                    "`{other}`: allowed values are smtp, pushover, an http(s) URL, plugin:<channel name> or an [[sms_gateway]] name"
                ),
            ))
        }
        TokenDelivery::Plugin(_) | TokenDelivery::Gateway(_) => Ok(()),
    }
}

/// Fallbacks must name a channel, not the channel itself, and never loop.
fn fallbacks(cfg: &Config, names: &Names) -> Result<(), ConfigError> {
    let edges: Vec<(String, &str, Option<&str>)> = cfg
        .sms_gateway
        .iter()
        .enumerate()
        .map(|(i, g)| {
            (
                format!("sms_gateway[{i}].fallback"),
                g.name.as_str(),
                g.fallback.as_deref(),
            )
        })
        .chain(cfg.channel.iter().enumerate().map(|(i, c)| {
            (
                format!("channel[{i}].fallback"),
                c.name.as_str(),
                c.fallback.as_deref(),
            )
        }))
        .collect();
    let lookup = |n: &str| {
        names.contains(n).then(|| {
            edges
                .iter()
                .find(|(_, name, _)| *name == n)
                .and_then(|(_, _, f)| f.map(str::to_string))
        })
    };
    for (key, name, target) in &edges {
        if let Some(target) = target {
            fallback::check(name, target, lookup, edges.len() + 1)
                .map_err(|e| invalid(key, e.message(false)))?;
        }
    }
    Ok(())
}
