//! The link to the eligibility system (オンライン資格確認等システム): protocol v1's wire
//! types ([`wire`], documented in docs/PROTOCOL.md), a minimal HTTP/1.1 framing with hard
//! limits ([`http`]), and the mutual-TLS client ([`client`]).

pub mod client;
pub mod http;
pub mod wire;

pub use client::{
    CardProblem, ClientError, ClientSettings, EligibilityClient, Endpoint, UnitIdentity,
};
