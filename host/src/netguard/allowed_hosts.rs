//! A channel's `allowedHosts`, parsed once (SPEC §6): `host`, `host:port`,
//! `*.suffix`, optionally prefixed `http://` to allow plain HTTP (otherwise
//! https only); default ports 443/80. Which addresses a host may resolve to
//! is [`super::policy`]'s business, checked after resolution.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `api.telegram.org`
    Exact(String),
    /// `*.example.com` matches `a.example.com` and `a.b.example.com`, not `example.com`.
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    pub http: bool,
    pub host: HostPattern,
    pub port: u16,
}

impl AllowedHost {
    pub fn parse(entry: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("`{}`: {why}", entry.escape_debug());
        let (http, rest) = if let Some(r) = entry.strip_prefix("http://") {
            (true, r)
        } else if let Some(r) = entry.strip_prefix("https://") {
            (false, r)
        } else if entry.contains("://") {
            return Err(bad("only http:// or https:// may prefix a host"));
        } else {
            (false, entry)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad("expected host, host:port or *.suffix (no path)"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            // An IPv6 literal must be bracketed to carry a port.
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                let port: u16 = p.parse().map_err(|_| bad("invalid port"))?;
                (h, port)
            }
            _ => (rest, if http { 80 } else { 443 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        if host.contains(['[', ']']) {
            return Err(bad("brackets only around an IPv6 address"));
        }
        let pattern = if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(bad("a wildcard must look like *.example.com"));
            }
            HostPattern::Suffix(suffix.to_string())
        } else if host.contains('*') {
            return Err(bad("a wildcard is only allowed as a leading `*.`"));
        } else {
            HostPattern::Exact(host)
        };
        Ok(Self {
            http,
            host: pattern,
            port,
        })
    }

    /// Does a request to `scheme://host:port` match this entry? `host` must be
    /// normalised by the caller (lowercase, no trailing dot, no brackets).
    pub fn allows(&self, https: bool, host: &str, port: u16) -> bool {
        if https == self.http || port != self.port {
            return false;
        }
        match &self.host {
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => host
                .strip_suffix(s.as_str())
                .is_some_and(|head| head.ends_with('.') && head.len() > 1),
        }
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.http {
            f.write_str("http://")?;
        }
        let host = match &self.host {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Suffix(s) => format!("*.{s}"),
        };
        // An IPv6 address is bracketed, or its last group would read as the port.
        if host.contains(':') {
            write!(f, "[{host}]:{}", self.port)
        } else {
            write!(f, "{host}:{}", self.port)
        }
    }
}

/// The whole list; empty means no outbound HTTP at all.
#[derive(Debug, Clone, Default)]
pub struct AllowList(Vec<AllowedHost>);

impl AllowList {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| AllowedHost::parse(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn allows(&self, https: bool, host: &str, port: u16) -> bool {
        self.0.iter().any(|a| a.allows(https, host, port))
    }

    pub fn entries(&self) -> &[AllowedHost] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_https_default_port() {
        let a = AllowedHost::parse("api.telegram.org").unwrap();
        assert!(a.allows(true, "api.telegram.org", 443));
        assert!(!a.allows(false, "api.telegram.org", 443));
        assert!(!a.allows(true, "api.telegram.org", 8443));
        assert!(!a.allows(true, "evil.api.telegram.org", 443));
        assert!(!a.allows(true, "api.telegram.org.evil.com", 443));
    }

    #[test]
    fn http_prefix_and_port() {
        let a = AllowedHost::parse("http://127.0.0.1:8081").unwrap();
        assert!(a.allows(false, "127.0.0.1", 8081));
        assert!(!a.allows(true, "127.0.0.1", 8081));
        let a = AllowedHost::parse("http://Example.COM.").unwrap();
        assert!(a.allows(false, "example.com", 80));
        let a = AllowedHost::parse("[::1]:9000").unwrap();
        assert!(a.allows(true, "::1", 9000));
    }

    #[test]
    fn suffix_matches_subdomains_only() {
        let a = AllowedHost::parse("*.slack.com").unwrap();
        assert!(a.allows(true, "hooks.slack.com", 443));
        assert!(a.allows(true, "a.b.slack.com", 443));
        assert!(!a.allows(true, "slack.com", 443));
        assert!(!a.allows(true, "evilslack.com", 443));
    }

    /// Found by the `allowed_hosts` fuzz target: `[::1]:9000` displayed as
    /// `::1:9000`, which reads back as host `::1:9000` on port 443.
    #[test]
    fn display_reads_back_as_the_same_entry() {
        for entry in [
            "[::1]:9000",
            "http://[2001:db8::1]",
            "api.example.com",
            "*.a.b:8443",
        ] {
            let a = AllowedHost::parse(entry).unwrap();
            assert_eq!(AllowedHost::parse(&a.to_string()), Ok(a.clone()), "{a}");
        }
        assert_eq!(
            AllowedHost::parse("[::1]:9000").unwrap().to_string(),
            "[::1]:9000"
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "",
            "ftp://x",
            "a.com/path",
            "*",
            "a.*.com",
            "x:notaport",
            "user@host",
            "*.",
            "].",
            "a]b",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
    }
}
