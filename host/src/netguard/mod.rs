//! The one address policy for outbound traffic on a tenant's behalf, and
//! the host patterns of a plugin channel's `allowedHosts`. No wasmtime here.
//!
//! * [`policy`] — which IP addresses may be reached ([`Class`]): public
//!   always, private ranges only with `plugins.allow_private_networks`,
//!   metadata and special addresses never. Plugin egress applies it with the
//!   operator's setting; tenant channels of built-in kinds (HTTP senders,
//!   SMTP relays) and their config checks apply it when private networks
//!   are not allowed (with them allowed, those channels are not checked).
//! * [`resolve`] — resolve a name and keep what the policy allows (the SMTP
//!   relay check, the reqwest resolver of the HTTP senders).
//! * [`allowed_hosts`] — a plugin channel's `allowedHosts`, parsed once.

pub mod allowed_hosts;
pub mod policy;
pub mod resolve;

pub use allowed_hosts::{AllowList, AllowedHost, HostPattern};
pub use policy::{Class, check_literal, classify, is_forbidden, partition, refused_address};
pub use resolve::{PublicOnlyResolver, ResolveError, resolve_public};
