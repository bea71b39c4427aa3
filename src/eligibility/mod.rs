//! The link to the eligibility system (オンライン資格確認等システム): the protocol's wire
//! types ([`wire`], documented in docs/PROTOCOL.md) and the mutual-TLS client
//! ([`client`]) on hyper's HTTP/1.1 (no framing of our own: a framing bug would be the
//! same at both ends, where no test sees it).

pub mod client;
mod endpoint;
mod error;
mod identity;
pub mod wire;

pub use client::{
    CardProblem, ClientError, ClientSettings, EligibilityClient, Endpoint, UnitIdentity,
};
