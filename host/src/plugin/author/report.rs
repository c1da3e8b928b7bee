//! What `postern plugin test` prints, in order: the plugin, the recipient
//! check, then for the delivery each outbound request with its answer and
//! time, every log line, CPU time, peak linear memory and the outcome.
//! Secrets given with `--secret` never show.

use std::time::Duration;

use crate::delivery::{OutcomeClass, SendOutcome};
use crate::plugin::LoadedPlugin;
use crate::plugin::outbound::Exchange;

pub(super) struct Report {
    secrets: Vec<String>,
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!(
        "{:.1} MiB ({bytes} bytes)",
        bytes as f64 / (1024.0 * 1024.0)
    )
}

impl Report {
    pub(super) fn new(secrets: Vec<String>) -> Self {
        Self { secrets }
    }

    fn clean(&self, text: &str) -> String {
        let mut t = text.to_string();
        for s in self.secrets.iter().filter(|s| s.len() >= 4) {
            t = t.replace(s.as_str(), "<redacted>");
        }
        t
    }

    pub(super) fn note(&self, line: &str) {
        println!("{}", self.clean(line));
    }

    pub(super) fn describe(&self, p: &LoadedPlugin, took: Duration) {
        let i = &p.info;
        println!("plugin: {} {} ({})", i.name, i.version, i.description);
        println!(
            "  sha256 {}, {} bytes, compiled and described in {}",
            p.sha256,
            p.size,
            ms(took)
        );
        for k in &i.config_keys {
            let mut flags = Vec::new();
            if k.required {
                flags.push("required");
            }
            if k.secret {
                flags.push("secret");
            }
            println!(
                "  config key {} [{}]: {}",
                k.name,
                flags.join(", "),
                k.description
            );
        }
    }

    pub(super) fn validated(&self, to: &str, r: &Result<(), String>) {
        match r {
            Ok(()) => println!("validate-recipient {to:?}: ok"),
            Err(why) => println!("validate-recipient {to:?}: refused: {}", self.clean(why)),
        }
    }

    fn exchange(&self, n: usize, x: &Exchange) {
        let answer = match &x.result {
            Ok(status) => format!("HTTP {status}"),
            Err(e) => format!("failed: {e}"),
        };
        let replayed = if x.replayed { " (replayed)" } else { "" };
        println!(
            "request {n}: {} {}://{}:{}{} body {} bytes -> {answer} in {}{replayed}",
            x.method,
            x.scheme,
            x.host,
            x.port,
            self.clean(&x.path),
            x.body_bytes,
            ms(x.elapsed)
        );
    }

    pub(super) fn delivered(&self, exchanges: &[Exchange], o: &SendOutcome) {
        println!("deliver:");
        for (i, x) in exchanges.iter().enumerate() {
            self.exchange(i + 1, x);
        }
        for line in o.log.as_deref().unwrap_or_default().lines() {
            println!("log: {}", self.clean(line));
        }
        if let Some(r) = &o.resources {
            println!("cpu time: {}", ms(Duration::from_micros(r.cpu_us)));
            println!("peak linear memory: {}", mib(r.peak_memory_bytes));
            println!("http requests: {}", r.http_requests);
        }
        let mut reason = o.detail.clone();
        if let Some(id) = &o.provider_id {
            reason.push_str(&format!(" (provider id {id})"));
        }
        self.outcome_line(o.class, &reason);
    }

    pub(super) fn outcome_line(&self, class: OutcomeClass, reason: &str) {
        println!("outcome: {}: {}", class.as_str(), self.clean(reason));
    }
}
