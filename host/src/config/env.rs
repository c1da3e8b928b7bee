//! `POSTERN_<SECTION>__<KEY>=value` overrides, applied to the parsed TOML
//! table before it is typed.

use super::check::ConfigError;

/// Sections an environment variable may set keys in. Array sections
/// (`[[sms_gateway]]`, `[[channel]]`) cannot be overridden.
const SECTIONS: &[&str] = &[
    "server", "api", "smtp", "pushover", "plugins", "delivery", "limits", "realtime",
];

/// `POSTERN_<SECTION>__<KEY>=value` sets `[section] key = value`. Values that
/// read as booleans or integers become those; everything else is a string.
pub fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("POSTERN_") else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let section = section.to_ascii_lowercase();
        let key = key.to_ascii_lowercase();
        if !SECTIONS.contains(&section.as_str()) {
            return Err(ConfigError::Env {
                var,
                message: format!(
                    "unknown section `{section}`; allowed: {}",
                    SECTIONS.join(", ")
                ),
            });
        }
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(t) = entry else {
            return Err(ConfigError::Env {
                var,
                message: format!("`{section}` in the file is not a table"),
            });
        };
        t.insert(key, typed_value(value));
    }
    Ok(())
}

/// A value becomes a number only when the number prints back as the same
/// text: a password such as `0123` or `1.50` stays the string it was.
fn typed_value(value: String) -> toml::Value {
    if value == "true" || value == "false" {
        toml::Value::Boolean(value == "true")
    } else if let Some(n) = value.parse::<i64>().ok().filter(|n| n.to_string() == value) {
        toml::Value::Integer(n)
    } else if let Some(f) = decimal(&value) {
        toml::Value::Float(f)
    } else {
        toml::Value::String(value)
    }
}

/// `17.5` (digits and one point, as the `*_seconds` keys take); not `inf`,
/// `1e3` or `1.50`.
fn decimal(value: &str) -> Option<f64> {
    let plain = value.chars().all(|c| c.is_ascii_digit() || c == '.');
    let f: f64 = value.parse().ok().filter(|_| plain)?;
    (f.to_string() == value).then_some(f)
}
