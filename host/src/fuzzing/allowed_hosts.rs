//! `allowedHosts` entries: parsing never panics, and an entry that parses
//! displays as an entry that parses back to the same thing (the display is
//! what `postern plugin check` and the API show an operator).

use crate::netguard::allowed_hosts::{AllowList, AllowedHost};

/// One entry per line.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let entries: Vec<&str> = text.lines().collect();
    for entry in &entries {
        let Ok(parsed) = AllowedHost::parse(entry) else {
            continue;
        };
        let shown = parsed.to_string();
        let again = AllowedHost::parse(&shown);
        assert_eq!(
            again.as_ref(),
            Ok(&parsed),
            "{entry:?} displays as {shown:?}"
        );
        check_allows(&parsed);
    }
    if let Ok(list) = AllowList::parse(&entries) {
        assert_eq!(list.entries().len(), entries.len());
    }
}

/// An exact entry allows its own host and port, on its own scheme only.
fn check_allows(a: &AllowedHost) {
    if let crate::netguard::allowed_hosts::HostPattern::Exact(h) = &a.host {
        assert!(a.allows(!a.http, h, a.port), "{a} refuses itself");
        assert!(!a.allows(a.http, h, a.port), "{a} allows the other scheme");
    }
}
