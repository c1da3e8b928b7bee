//! The fallback graph: a channel may name another to hand an undeliverable
//! code to. Chains are fine, loops are not. The config file and
//! `PUT /channels` both check with [`check`].

/// Why a fallback was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackError {
    /// No channel has the name.
    Missing(String),
    /// The channel names itself.
    Itself,
    /// Following the chain leads back (the names walked, first to last).
    Cycle(Vec<String>),
}

impl FallbackError {
    /// The message; `proposed` words a cycle as one a change would make.
    pub fn message(&self, proposed: bool) -> String {
        match self {
            Self::Missing(f) => format!("no channel named `{f}`"),
            Self::Itself => "a channel cannot fall back to itself".into(),
            Self::Cycle(chain) if proposed => {
                format!("fallbacks would form a cycle: {}", chain.join(" → "))
            }
            Self::Cycle(chain) => format!("fallbacks form a cycle: {}", chain.join(" → ")),
        }
    }
}

/// Checks that `name` may fall back to `target`. `lookup(n)` is `None` when
/// no channel `n` exists, else that channel's own fallback. A chain longer
/// than `max_len` names counts as a cycle.
pub fn check(
    name: &str,
    target: &str,
    lookup: impl Fn(&str) -> Option<Option<String>>,
    max_len: usize,
) -> Result<(), FallbackError> {
    let Some(mut next) = lookup(target) else {
        return Err(FallbackError::Missing(target.to_string()));
    };
    if target == name {
        return Err(FallbackError::Itself);
    }
    let mut chain = vec![name.to_string(), target.to_string()];
    while let Some(n) = next {
        chain.push(n.clone());
        if n == name || chain.len() > max_len {
            return Err(FallbackError::Cycle(chain));
        }
        next = lookup(&n).flatten();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, Option<&str>)]) -> impl Fn(&str) -> Option<Option<String>> {
        let edges: Vec<(String, Option<String>)> = edges
            .iter()
            .map(|(a, b)| (a.to_string(), b.map(str::to_string)))
            .collect();
        move |n| edges.iter().find(|(a, _)| a == n).map(|(_, b)| b.clone())
    }

    #[test]
    fn chains_pass_and_loops_do_not() {
        let g = graph(&[("a", None), ("b", Some("a")), ("c", Some("b"))]);
        assert_eq!(check("d", "c", &g, 64), Ok(()));
        assert_eq!(
            check("a", "c", &g, 64).unwrap_err().message(true),
            "fallbacks would form a cycle: a → c → b → a"
        );
        assert_eq!(check("a", "a", &g, 64), Err(FallbackError::Itself));
        assert_eq!(
            check("a", "nowhere", &g, 64),
            Err(FallbackError::Missing("nowhere".into()))
        );
    }
}
