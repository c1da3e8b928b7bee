//! Name resolution for built-in senders of tenant channels: only addresses
//! the policy lets through come back, so a name cannot be pointed at an
//! internal service.

use std::net::SocketAddr;

use super::policy;

/// Why [`resolve_public`] found nothing to connect to.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve {host}: {source}")]
    Lookup {
        host: String,
        source: std::io::Error,
    },
    #[error("{host} resolves to no public address; private networks are not allowed")]
    OnlyForbidden { host: String },
}

/// Resolves `host` and keeps only the addresses that are not forbidden.
pub async fn resolve_public(host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
    let found = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| ResolveError::Lookup {
            host: host.to_string(),
            source,
        })?;
    let (addrs, _refused) = policy::partition(found, false);
    if addrs.is_empty() {
        return Err(ResolveError::OnlyForbidden {
            host: host.to_string(),
        });
    }
    Ok(addrs)
}

/// A reqwest resolver that never returns a forbidden address.
pub struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolve_public(&host, 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forbidden_literals_resolve_to_nothing_public() {
        match resolve_public("127.0.0.1", 25).await {
            Err(e @ ResolveError::OnlyForbidden { .. }) => assert_eq!(
                e.to_string(),
                "127.0.0.1 resolves to no public address; private networks are not allowed"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            resolve_public("2001::1", 25).await,
            Err(ResolveError::OnlyForbidden { .. })
        ));
    }
}
