//! The link to the eligibility system (オンライン資格確認等システム): the protocol's wire
//! types ([`wire`], documented in docs/PROTOCOL.md) and the mutual-TLS client
//! ([`client`]) on hyper's HTTP/1.1 (no framing of our own: a framing bug would be the
//! same at both ends, where no test sees it).
//!
//! What is inside: protocol v2 (docs/PROTOCOL.md): `wire` (serde types, RFC 9457 problems),
//! `client` (rustls TLS 1.3 mTLS, pinned CA + host name, the unit key as DER or a TPM
//! signer; HTTP/1.1 through hyper's `client::conn::http1` over the tokio-rustls stream — no
//! framing of our own — on one kept-alive connection, session resumption, timeouts, retries
//! of transport failures with backon's jittered backoff inside a total deadline, response
//! cap, a `request-id`/`incident-id` on every request whose echo is checked on every answer
//! (a mismatch drops the connection), the unit key's signature over each record's chain
//! link, an optional route guard, `ClientError` → `ServiceFailure` for the session)

pub mod client;
mod endpoint;
mod error;
mod identity;
pub mod wire;

pub use client::{
    CardProblem, ClientError, ClientSettings, EligibilityClient, Endpoint, UnitIdentity,
};
