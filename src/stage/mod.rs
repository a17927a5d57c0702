//! The RFC 8461 / RFC 8460 stages: pure functions from bytes and names to outcomes and findings.

pub mod cache;
pub mod cert;
pub mod expect;
pub mod mx;
pub mod policy;
pub mod record;
pub mod senders;
pub mod tlsrpt;
pub mod transport;
