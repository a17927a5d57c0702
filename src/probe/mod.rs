//! I/O: DNS, HTTPS and SMTP. Every function here has a deadline and a size cap, and returns
//! what it saw as data (no findings: `crate::stage::transport` and `crate::stage::cert` judge
//! it, called by `crate::check::judge`). The one judgement made here is the certificate
//! chain's, by `crate::stage::cert::TrustStore::judge` at handshake time, as a sender's TLS
//! client makes it; the verdict is stored with the chain's description.

pub mod cache;
pub mod dns;
pub mod health;
pub mod https;
pub mod route;
pub mod smtp;
pub mod target;
pub mod tls;
