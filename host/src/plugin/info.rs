//! What a plugin says about itself (`describe()`), as the API shows it.

use serde::{Deserialize, Serialize};

use super::bindings::PluginInfo as WitInfo;

/// What `describe()` says, as the API shows it (camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub config_keys: Vec<ConfigKeyInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigKeyInfo {
    pub name: String,
    pub required: bool,
    pub secret: bool,
    pub description: String,
}

impl From<WitInfo> for PluginInfo {
    fn from(i: WitInfo) -> Self {
        Self {
            name: i.name,
            version: i.version,
            description: i.description,
            config_keys: i
                .config_keys
                .into_iter()
                .map(|k| ConfigKeyInfo {
                    name: k.name,
                    required: k.required,
                    secret: k.secret,
                    description: k.description,
                })
                .collect(),
        }
    }
}
