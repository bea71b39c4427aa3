//! Where the eligibility system is: an `https://host:port` parsed by the `http` crate's
//! `Uri` (the ecosystem's parser, not our own), IPv6 hosts without their brackets.

use super::error::ClientError;

/// Where the eligibility system is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parse `https://host:port` (IPv6 in brackets); the port defaults to 443. No user
    /// part, no other scheme.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let bad = || ClientError::BadEndpoint(url.to_string());
        let uri: http::Uri = url.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("https") {
            return Err(bad());
        }
        let authority = uri.authority().ok_or_else(bad)?;
        if authority.as_str().contains('@') {
            return Err(bad());
        }
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(bad());
        }
        // `Uri` keeps a port it cannot read as a number: one written must be one
        let after_host = authority
            .as_str()
            .rsplit_once(']')
            .map_or(authority.as_str(), |(_, rest)| rest);
        let port = match (after_host.contains(':'), authority.port_u16()) {
            (true, None) => return Err(bad()),
            (_, p) => p.unwrap_or(443),
        };
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }
}
