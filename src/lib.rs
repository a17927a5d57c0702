//! mta-sts-exporter: checks the MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) posture of mail
//! domains.
//!
//! The modules follow the path of one check:
//!
//! - [`stage`]: pure functions, no sockets. [`stage::record`] parses the `_mta-sts` TXT record,
//!   [`stage::policy`] the policy file, [`stage::mx`] matches MX hosts against `mx` patterns,
//!   [`stage::tlsrpt`] parses the `_smtp._tls` record, [`stage::cert`] describes and judges
//!   certificates, [`stage::transport`] judges what the policy fetch and SMTP probes captured.
//! - [`probe`]: I/O only. [`probe::dns`] (hickory), [`probe::https`] (policy fetch),
//!   [`probe::smtp`] (STARTTLS), [`probe::tls`] (capture the chain, then judge it),
//!   [`probe::target`] (which addresses we refuse to connect to), [`probe::cache`] (one probe
//!   per MX and address, a politeness bound per address) and [`probe::health`] (addresses that
//!   stopped answering).
//! - [`check`] checks one domain in two steps: [`check::gather`] does the I/O and returns plain
//!   observations, [`check::judge`] (pure, time passed in) turns them into a
//!   [`report::DomainReport`], plain data holding each stage's outcome and a list of
//!   [`finding::Finding`]s.
//! - [`clock`] (time helpers), [`domain`] (`DomainName` and the names derived from it).
//! - [`config`] reads the configuration and the domain lists; [`inventory`] keeps the lists of
//!   `domain_sources` (HTTP(S) inventories) fresh on disk.
//! - [`render`] prints a report for people; [`batch`] runs `check` over many domains in order.
//! - [`whatif`] judges a draft policy or MX set against the live domain before publishing.
//! - [`tlsrpt`] reads the TLS-RPT reports senders send: decoding, parsing, summaries.
//! - [`selfhealth`] (pure, time passed in) tells from the finished checks whether the exporter
//!   itself is blind (resolver failing or finding nothing, SMTP or HTTPS egress blocked);
//!   [`checklog`] logs each finished check; [`statuspage`] renders the landing page.

#![forbid(unsafe_code)]

pub mod batch;
pub mod check;
pub mod checklog;
pub mod clock;
pub mod config;
pub mod domain;
pub mod drift;
pub mod duration;
pub mod finding;
pub mod inventory;
pub mod logging;
pub mod metrics;
pub mod probe;
pub mod render;
pub mod report;
pub mod scheduler;
pub mod selfhealth;
pub mod server;
pub mod service;
pub mod shard;
pub mod stage;
pub mod statuspage;
pub mod store;
pub mod tlsrpt;
pub mod webconfig;
pub mod whatif;
