//! The permission review: what a component can do (the WASI interfaces it
//! imports, the config and secret keys it declares), and what a new version
//! adds over the live one. A new version that adds an import or a secret
//! key is not swapped in unless the upload says `?accept=permissions`.
//!
//! Outbound HTTP stays confined to each channel's `allowedHosts`, which an
//! upload never changes; a component declares no hosts, so "needs wider
//! `allowedHosts`" shows as newly importing `wasi:http/outgoing-handler`.

use std::collections::BTreeSet;

use serde::Serialize;

use super::info::PluginInfo;

/// What a version can do, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Permissions {
    /// Imported interfaces without their version, e.g. `wasi:http/outgoing-handler`.
    pub imports: Vec<String>,
    pub outbound_http: bool,
    pub clocks: bool,
    pub random: bool,
    pub config_keys: Vec<String>,
    pub secret_keys: Vec<String>,
}

impl Permissions {
    /// From the import names (`wasi:http/types@0.2.6`) and `describe()`.
    pub fn of(imports: &[String], info: &PluginInfo) -> Self {
        let imports: BTreeSet<String> = imports
            .iter()
            .map(|i| i.split('@').next().unwrap_or(i).to_string())
            .collect();
        let any = |prefix: &str| imports.iter().any(|i| i.starts_with(prefix));
        let keys = |secret: bool| -> Vec<String> {
            let set: BTreeSet<&str> = info
                .config_keys
                .iter()
                .filter(|k| k.secret == secret)
                .map(|k| k.name.as_str())
                .collect();
            set.into_iter().map(String::from).collect()
        };
        Self {
            outbound_http: imports.contains("wasi:http/outgoing-handler"),
            clocks: any("wasi:clocks/"),
            random: any("wasi:random/"),
            config_keys: keys(false),
            secret_keys: keys(true),
            imports: imports.into_iter().collect(),
        }
    }

    /// From a stored row's `imports` (JSON array) and `info` (JSON).
    pub fn from_stored(imports: &str, info: &str) -> Option<Self> {
        let imports: Vec<String> = serde_json::from_str(imports).ok()?;
        let info: PluginInfo = serde_json::from_str(info).ok()?;
        Some(Self::of(&imports, &info))
    }

    /// What `new` can do that `self` could not; `None` when nothing.
    pub fn widened_by(&self, new: &Permissions) -> Option<Widening> {
        let added = |old: &[String], new: &[String]| -> Vec<String> {
            new.iter().filter(|n| !old.contains(n)).cloned().collect()
        };
        let w = Widening {
            added_imports: added(&self.imports, &new.imports),
            added_secret_keys: added(&self.secret_keys, &new.secret_keys),
            outbound_http: new.outbound_http && !self.outbound_http,
        };
        (!w.added_imports.is_empty() || !w.added_secret_keys.is_empty()).then_some(w)
    }
}

/// The diff a 409 carries in `details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Widening {
    pub added_imports: Vec<String>,
    pub added_secret_keys: Vec<String>,
    /// True when the new version starts making outbound HTTP requests
    /// (to the channel's `allowedHosts` only).
    pub outbound_http: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::ConfigKeyInfo;

    fn info(keys: &[(&str, bool)]) -> PluginInfo {
        PluginInfo {
            name: "x".into(),
            version: "1".into(),
            description: String::new(),
            config_keys: keys
                .iter()
                .map(|(n, secret)| ConfigKeyInfo {
                    name: n.to_string(),
                    required: false,
                    secret: *secret,
                    description: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn widening_is_added_imports_or_secret_keys() {
        let base = [
            "postern:plugin/config@0.1.0".to_string(),
            "wasi:clocks/monotonic-clock@0.2.6".into(),
        ];
        let old = Permissions::of(&base, &info(&[("url", false)]));
        assert!(old.clocks && !old.outbound_http && !old.random);
        // A patch bump of WASI, fewer imports, a new plain config key: no widening.
        let same = Permissions::of(
            &[
                "postern:plugin/config@0.1.0".to_string(),
                "wasi:clocks/monotonic-clock@0.2.12".into(),
            ],
            &info(&[("url", false), ("channel", false)]),
        );
        assert_eq!(old.widened_by(&same), None);
        let mut with_http = base.to_vec();
        with_http.push("wasi:http/outgoing-handler@0.2.6".into());
        let w = old
            .widened_by(&Permissions::of(&with_http, &info(&[("url", false)])))
            .unwrap();
        assert_eq!(w.added_imports, ["wasi:http/outgoing-handler"]);
        assert!(w.outbound_http);
        let w = old
            .widened_by(&Permissions::of(
                &base,
                &info(&[("url", false), ("token", true)]),
            ))
            .unwrap();
        assert_eq!(
            (w.added_imports.len(), w.added_secret_keys.as_slice()),
            (0, &["token".to_string()][..])
        );
    }
}
