//! The messages of the file's channels: each section's `templates` (and
//! `[smtp] subject/body`), built and checked once at load, so a template
//! that does not parse stops start-up naming its key.

use super::Config;
use super::check::{ConfigError, invalid};
use crate::messages::spec::CatchAll;
use crate::messages::{Kind, Messages, Site, TemplateError};

/// `[server]`'s part of every message.
pub fn site(cfg: &Config) -> Site {
    Site::new(&cfg.server.app_name, cfg.server.base_url.as_deref())
}

fn config_error(e: TemplateError) -> ConfigError {
    let field = e.field.clone();
    let message = e.to_string();
    // The Display starts with the field; the error names it already.
    let message = message
        .strip_prefix(&format!("`{field}`: "))
        .unwrap_or(&message)
        .to_string();
    invalid(field, message)
}

/// Every file channel's messages, by channel name. `url` has none (it sends
/// the fields, not a text) and `pushover` keeps rport's wording.
pub fn file_messages(cfg: &Config) -> Result<Vec<(String, Messages)>, ConfigError> {
    let mut out = Vec::new();
    if let Some(s) = &cfg.smtp {
        let mut catch = Vec::new();
        for (kind, key, v) in [
            (Kind::Subject, "smtp.subject", &s.subject),
            (Kind::Body, "smtp.body", &s.body),
        ] {
            if let Some(source) = v.as_ref().filter(|v| !v.is_empty()) {
                catch.push(CatchAll {
                    kind,
                    field: key.into(),
                    source: source.clone(),
                });
            }
        }
        let m = Messages::build(&s.templates, &catch, site(cfg), "smtp.templates")
            .map_err(config_error)?;
        out.push(("email".to_string(), m));
    }
    for (i, g) in cfg.sms_gateway.iter().enumerate() {
        let prefix = format!("sms_gateway[{i}].templates");
        let m = Messages::build(&g.templates, &[], site(cfg), &prefix).map_err(config_error)?;
        out.push((g.name.clone(), m));
    }
    for (i, c) in cfg.channel.iter().enumerate() {
        let prefix = format!("channel[{i}].templates");
        let m = Messages::build(&c.templates, &[], site(cfg), &prefix).map_err(config_error)?;
        out.push((c.name.clone(), m));
    }
    Ok(out)
}

/// `config check`'s warnings: texts that need more than one SMS.
pub fn warnings(cfg: &Config) -> Vec<String> {
    let Ok(all) = file_messages(cfg) else {
        return Vec::new();
    };
    let ttl = cfg.api.two_fa_token_ttl_seconds;
    let mut out = Vec::new();
    for (name, m) in all.iter().filter(|(name, _)| name != "email") {
        let long = m.long_texts(cfg.limits.code_length, ttl);
        if long.is_empty() {
            continue;
        }
        let each: Vec<String> = long
            .iter()
            .map(|(loc, l)| format!("{loc}: {}, {} segments", l.encoding.as_str(), l.segments))
            .collect();
        out.push(format!(
            "channel `{name}`: the text needs more than one SMS ({})",
            each.join("; ")
        ));
    }
    out
}
