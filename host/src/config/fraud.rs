//! `[fraud]`: where codes may go by phone (postern addition). A destination
//! policy by country and by number prefix, per tenant over the operator's
//! defaults, and the SMS-pumping guard's thresholds. Applies to phone-like
//! channels only (`sms-*` kinds, plugins whose send-to is E.164).

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Deserialize;

use super::check::{ConfigError, check_range, invalid};

/// What a policy does with a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FraudAction {
    /// Sent; the pumping guard blocks a prefix whose codes are not checked.
    #[default]
    Allow,
    /// Refused: 403 `error-destination-blocked`.
    Deny,
    /// Sent; the pumping guard reports a prefix but never blocks it.
    Monitor,
}

/// A destination policy: the action for destinations no rule names, rules
/// by ISO 3166-1 alpha-2 country, and rules by E.164 prefix (`+4479`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct FraudPolicy {
    pub default: Option<FraudAction>,
    pub countries: BTreeMap<String, FraudAction>,
    pub prefixes: BTreeMap<String, FraudAction>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FraudConfig {
    /// The operator's policy, for every tenant: its default action …
    pub default: Option<FraudAction>,
    /// … its rules by country …
    pub countries: BTreeMap<String, FraudAction>,
    /// … and by E.164 prefix.
    pub prefixes: BTreeMap<String, FraudAction>,
    /// A tenant's own rules, over the operator's: its `default` replaces
    /// the operator's, its country and prefix rules win over theirs.
    pub tenants: BTreeMap<String, FraudPolicy>,
    /// The sliding window the guard counts sends and checks over.
    pub window_minutes: u32,
    /// A prefix is judged only once it has more sends than this in the window.
    pub min_sends: u32,
    /// Below this share of checked codes (of the window's sends) a prefix
    /// is pumped: blocked (`allow`) or reported (`monitor`).
    pub min_conversion_percent: u32,
    /// Digits after the country code that make the tracked prefix.
    pub prefix_digits: u32,
}

impl Default for FraudConfig {
    fn default() -> Self {
        Self {
            default: None,
            countries: BTreeMap::new(),
            prefixes: BTreeMap::new(),
            tenants: BTreeMap::new(),
            window_minutes: 60,
            min_sends: 20,
            min_conversion_percent: 20,
            prefix_digits: 3,
        }
    }
}

/// `+` and 1 to 15 digits.
pub fn is_e164_prefix(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (1..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// One policy's rules, borrowed.
#[derive(Clone, Copy)]
struct Rules<'a> {
    default: Option<FraudAction>,
    countries: &'a BTreeMap<String, FraudAction>,
    prefixes: &'a BTreeMap<String, FraudAction>,
}

impl<'a> From<&'a FraudPolicy> for Rules<'a> {
    fn from(p: &'a FraudPolicy) -> Self {
        Self {
            default: p.default,
            countries: &p.countries,
            prefixes: &p.prefixes,
        }
    }
}

impl Rules<'_> {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        for country in self.countries.keys() {
            let known = country.len() == 2 && phonenumber::country::Id::from_str(country).is_ok();
            if !known {
                return Err(invalid(
                    format!("{at}.countries.{country}"),
                    "not an ISO 3166-1 alpha-2 country code with a phone numbering plan (e.g. GB, US)",
                ));
            }
        }
        for prefix in self.prefixes.keys() {
            if !is_e164_prefix(prefix) {
                return Err(invalid(
                    format!("{at}.prefixes.{prefix}"),
                    "a prefix is `+` and 1 to 15 digits (e.g. \"+4479\")",
                ));
            }
        }
        Ok(())
    }
}

impl FraudConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.operator().validate("fraud")?;
        for (name, policy) in &self.tenants {
            crate::domain::TenantName::parse(name)
                .map_err(|m| invalid(format!("fraud.tenants.{name}"), m))?;
            Rules::from(policy).validate(&format!("fraud.tenants.{name}"))?;
        }
        let ranges: [(&str, u32, std::ops::RangeInclusive<u64>); 4] = [
            ("fraud.window_minutes", self.window_minutes, 1..=7 * 24 * 60),
            ("fraud.min_sends", self.min_sends, 1..=1_000_000),
            (
                "fraud.min_conversion_percent",
                self.min_conversion_percent,
                0..=100,
            ),
            ("fraud.prefix_digits", self.prefix_digits, 0..=6),
        ];
        for (key, value, range) in ranges {
            check_range(key, u64::from(value), range)?;
        }
        Ok(())
    }

    fn operator(&self) -> Rules<'_> {
        Rules {
            default: self.default,
            countries: &self.countries,
            prefixes: &self.prefixes,
        }
    }

    /// The action for a destination of `tenant`: the longest matching
    /// prefix rule, else its country's rule, else the default; the tenant's
    /// rules before the operator's at each step. Returns the prefix rule
    /// that decided, if one did.
    pub fn action_for(
        &self,
        tenant: &str,
        e164: &str,
        country: Option<&str>,
    ) -> (FraudAction, Option<String>) {
        let own = self.tenants.get(tenant).map(Rules::from);
        let policies: Vec<Rules<'_>> = own.into_iter().chain([self.operator()]).collect();
        let by_prefix = policies
            .iter()
            .enumerate()
            .flat_map(|(rank, p)| p.prefixes.iter().map(move |(k, a)| (rank, k, a)))
            .filter(|(_, k, _)| e164.starts_with(k.as_str()))
            .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(&a.0)));
        if let Some((_, prefix, action)) = by_prefix {
            return (*action, Some(prefix.clone()));
        }
        let by_country = country.and_then(|c| policies.iter().find_map(|p| p.countries.get(c)));
        if let Some(action) = by_country {
            return (*action, None);
        }
        let default = policies.iter().find_map(|p| p.default).unwrap_or_default();
        (default, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> FraudConfig {
        let c: FraudConfig = toml::from_str(toml).unwrap();
        c.validate().unwrap();
        c
    }

    #[test]
    fn the_longest_prefix_then_the_country_then_the_default_decides() {
        let c = config(
            "default = \"deny\"\ncountries = { GB = \"allow\" }\nprefixes = { \"+4479\" = \"monitor\", \"+447\" = \"deny\" }\n\
             [tenants.acme]\ndefault = \"allow\"\nprefixes = { \"+4479\" = \"deny\" }\n",
        );
        use FraudAction::*;
        assert_eq!(
            c.action_for("default", "+447911123456", Some("GB")).0,
            Monitor
        );
        assert_eq!(c.action_for("default", "+447811123456", Some("GB")).0, Deny);
        assert_eq!(
            c.action_for("default", "+441611234567", Some("GB")).0,
            Allow
        );
        assert_eq!(c.action_for("default", "+15551234567", Some("US")).0, Deny);
        // The tenant's rule wins at the same length; its default replaces the operator's.
        assert_eq!(
            c.action_for("acme", "+447911123456", Some("GB")),
            (Deny, Some("+4479".into()))
        );
        assert_eq!(c.action_for("acme", "+15551234567", Some("US")).0, Allow);
    }

    #[test]
    fn bad_rules_name_their_key() {
        for (toml, key) in [
            ("countries = { XX = \"deny\" }", "fraud.countries.XX"),
            ("countries = { gb = \"deny\" }", "fraud.countries.gb"),
            ("prefixes = { \"44\" = \"deny\" }", "fraud.prefixes.44"),
            (
                "[tenants.acme]\nprefixes = { \"+4a\" = \"deny\" }",
                "fraud.tenants.acme.prefixes.+4a",
            ),
            (
                "min_conversion_percent = 101",
                "fraud.min_conversion_percent",
            ),
        ] {
            let c: FraudConfig = toml::from_str(toml).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(&format!("`{key}`")), "{toml}: {e}");
        }
        assert!(toml::from_str::<FraudConfig>("default = \"block\"").is_err());
    }
}
