//! A plugin channel as a [`Sender`]: every ending of a plugin call maps onto
//! the outcome classes the queue already knows (SPEC §6), so retries and
//! fallbacks work as for built-in senders.
//!
//! | ending                                              | class     |
//! |-----------------------------------------------------|-----------|
//! | `Ok(receipt)`                                       | delivered |
//! | `unavailable`, wall timeout, no free instance slot  | transient |
//! | `invalid-recipient`, `rejected`, `misconfigured`    | permanent |
//! | trap, panic, CPU budget, memory limit               | permanent |
//! | a request the sandbox refused (allow-list, private address, request cap) | permanent |

use std::sync::Arc;

use async_trait::async_trait;

use super::bindings::{DeliveryError, Message as WitMessage};
use super::call::{Call, Failure, Returned};
use super::runtime::{LoadedPlugin, PluginRuntime};
use super::sandbox::{ChannelSandbox, Sandbox};
use crate::delivery::{Message, OutcomeClass, Resources, SendOutcome, Sender};

pub struct PluginSender {
    runtime: Arc<PluginRuntime>,
    plugin: Arc<LoadedPlugin>,
    sandbox: Sandbox,
}

impl PluginRuntime {
    /// A channel's sender: `plugin` running with what `sandbox` grants.
    pub fn sender(
        self: &Arc<Self>,
        plugin: Arc<LoadedPlugin>,
        sandbox: ChannelSandbox,
    ) -> Arc<PluginSender> {
        Arc::new(PluginSender {
            runtime: self.clone(),
            sandbox: self.sandbox(&sandbox),
            plugin,
        })
    }
}

impl PluginSender {
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// A sender whose exchanges `tools` records (or replays):
    /// `postern plugin test`.
    pub(crate) fn with_tools(
        runtime: &Arc<PluginRuntime>,
        plugin: Arc<LoadedPlugin>,
        sandbox: &ChannelSandbox,
        tools: Arc<super::outbound::Tools>,
    ) -> Self {
        Self {
            runtime: runtime.clone(),
            sandbox: runtime.sandbox_with_tools(sandbox, tools),
            plugin,
        }
    }
}

#[async_trait]
impl Sender for PluginSender {
    fn kind(&self) -> &'static str {
        "plugin"
    }

    async fn validate_recipient(&self, send_to: &str) -> Result<(), String> {
        let run = self
            .runtime
            .call(
                &self.plugin,
                &self.sandbox,
                Call::Validate(send_to.to_string()),
            )
            .await;
        match run.result {
            Ok(Returned::Validated(r)) => r,
            Ok(_) => Err("the plugin gave an unexpected answer".into()),
            Err(f) => Err(format!(
                "the plugin could not check the recipient: {}",
                f.detail(&self.sandbox.limits)
            )),
        }
    }

    async fn send(&self, m: &Message) -> SendOutcome {
        let message = WitMessage {
            send_to: m.send_to.clone(),
            code: m.code.clone(),
            ttl_seconds: m.ttl_seconds,
            text: m.text.clone(),
            username: m.username.clone(),
            user_agent: m.user_agent.clone(),
            remote_address: m.remote_address.clone(),
            locale: m.locale.clone(),
        };
        let run = self
            .runtime
            .call(&self.plugin, &self.sandbox, Call::Deliver(message))
            .await;
        let name = &self.plugin.info.name;
        let denial = run.journal.denial();
        let failure = match &run.result {
            Err(f) => Some(f.reason()),
            Ok(Returned::Delivered(Err(_))) => denial.as_ref().map(|_| "sandbox_denied"),
            Ok(_) => None,
        };
        let mut outcome = match run.result {
            Ok(Returned::Delivered(Ok(receipt))) => {
                SendOutcome::delivered(format!("delivered by plugin {name}"))
                    .with_provider_id(receipt.provider_id)
            }
            Ok(Returned::Delivered(Err(e))) => {
                let (class, said) = classify(e);
                match &denial {
                    // A policy refusal will not change on retry.
                    Some(d) => SendOutcome::permanent(format!(
                        "outbound request refused by the sandbox: {d} (plugin {name} said {said})"
                    )),
                    None => SendOutcome::new(class, format!("plugin {name}: {said}")),
                }
            }
            Ok(_) => SendOutcome::permanent(format!("plugin {name} gave an unexpected answer")),
            Err(f) => {
                let class = match f {
                    Failure::WallTimeout | Failure::Start(_) => OutcomeClass::Transient,
                    Failure::CpuBudget | Failure::Memory | Failure::Trap(_) => {
                        OutcomeClass::Permanent
                    }
                };
                SendOutcome::new(
                    class,
                    format!("{} ({name})", f.detail(&self.sandbox.limits)),
                )
            }
        };
        outcome.log = run.journal.render();
        outcome.plugin_sha256 = Some(self.plugin.sha256.clone());
        outcome.resources = Some(Box::new(Resources {
            failure,
            ..run.usage.resources(name)
        }));
        outcome
    }
}

/// What the plugin said went wrong, as an outcome class and a detail.
fn classify(e: DeliveryError) -> (OutcomeClass, String) {
    match e {
        DeliveryError::Unavailable(m) => (OutcomeClass::Transient, format!("unavailable: {m}")),
        DeliveryError::InvalidRecipient(m) => {
            (OutcomeClass::Permanent, format!("invalid recipient: {m}"))
        }
        DeliveryError::Rejected(m) => (OutcomeClass::Permanent, format!("rejected: {m}")),
        DeliveryError::Misconfigured(m) => (OutcomeClass::Permanent, format!("misconfigured: {m}")),
    }
}
