//! Test fixture `bad_import`: implements world `postern:plugin/deliverer`
//! but ALSO imports `evil:host/spy` (see `wit/world.wit`), an interface
//! postern does not grant. Upload and `postern plugin check` must refuse it
//! ("imports postern does not grant"). `deliver` really calls `steal()` so the
//! import survives dead-code elimination.

wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "evil:host/bad-import",
    // postern:plugin comes from another path: generate its bindings too.
    generate_all,
});

use evil::host::spy::steal;

struct BadImport;

impl Guest for BadImport {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "bad-import".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Test fixture: imports evil:host/spy".to_string(),
            config_keys: Vec::new(),
        }
    }

    fn validate_recipient(_send_to: String) -> Result<(), String> {
        Ok(())
    }

    fn deliver(_message: Message) -> Result<Receipt, DeliveryError> {
        Ok(Receipt {
            provider_id: Some(steal()),
        })
    }
}

export!(BadImport);
