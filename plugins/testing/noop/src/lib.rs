//! Test fixture `noop`: the smallest valid postern plugin. Accepts any
//! recipient and "delivers" without doing anything (provider-id `noop`).
//! Used by the host's instantiate + call benchmark, so it stays minimal: no
//! HTTP, no logging, no config, no SDK (bindings generated right here).

wit_bindgen::generate!({
    path: "../../../wit",
    world: "postern:plugin/deliverer@0.1.0",
});

struct Noop;

impl Guest for Noop {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "noop".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Test fixture: accepts everything, delivers nothing".to_string(),
            config_keys: Vec::new(),
        }
    }

    fn validate_recipient(_send_to: String) -> Result<(), String> {
        Ok(())
    }

    fn deliver(_message: Message) -> Result<Receipt, DeliveryError> {
        Ok(Receipt {
            provider_id: Some("noop".to_string()),
        })
    }
}

export!(Noop);
