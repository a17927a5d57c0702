//! Describes a certificate chain and judges it the way an RFC 8461 sender would, one property
//! at a time, so that an expired certificate does not hide an untrusted issuer or a wrong name.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ring::digest;
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, RootCertStore};
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::clock::format_date;
use crate::finding::{Code, Finding};

/// What the leaf certificate says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// DNS names from the subjectAltName extension (the only names RFC 8461 matches).
    pub dns_names: Vec<String>,
    pub serial: String,
    /// "ECDSA P-256", "RSA 2048", ...
    pub key_type: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// Lower-case hex of the SHA-256 of the DER encoding.
    pub sha256_fingerprint: String,
}

impl CertInfo {
    /// Parses one DER certificate. The error names what could not be read.
    pub fn from_der(der: &[u8]) -> Result<CertInfo, String> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("certificate is not valid DER X.509: {e}"))?;
        let mut dns_names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let GeneralName::DNSName(n) = name {
                    dns_names.push((*n).to_string());
                }
            }
        }
        let key_type = match cert.public_key().parsed() {
            Ok(PublicKey::RSA(k)) => format!("RSA {}", k.key_size()),
            Ok(PublicKey::EC(p)) => format!("ECDSA {}", p.key_size()),
            Ok(PublicKey::DSA(_)) => "DSA".to_string(),
            Ok(PublicKey::GostR3410(_)) | Ok(PublicKey::GostR3410_2012(_)) => "GOST".to_string(),
            Ok(PublicKey::Unknown(_)) | Err(_) => cert
                .public_key()
                .algorithm
                .algorithm
                .to_id_string()
                .to_string(),
        };
        let fingerprint = digest::digest(&digest::SHA256, der);
        Ok(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            dns_names,
            serial: cert.raw_serial_as_string(),
            key_type,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            sha256_fingerprint: hex(fingerprint.as_ref()),
        })
    }

    /// Whole days from `now` (unix seconds) until expiry; negative once expired.
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }
}

/// One reason a sender would refuse the certificate. Mirrors rustls' `CertificateError`,
/// folded into the cases an operator can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertFault {
    Expired,
    NotYetValid,
    NameMismatch,
    /// The chain ends in a CA that is not in the trust store.
    UnknownIssuer,
    /// The leaf is its own issuer and not trusted.
    SelfSigned,
    /// The issuer of the last certificate sent was neither sent nor is a trusted root:
    /// usually a missing intermediate.
    IncompleteChain,
    /// The server sent no certificate, or one that cannot be parsed.
    BadEncoding,
    Other,
}

impl CertFault {
    pub fn as_str(self) -> &'static str {
        match self {
            CertFault::Expired => "expired",
            CertFault::NotYetValid => "not_yet_valid",
            CertFault::NameMismatch => "name_mismatch",
            CertFault::UnknownIssuer => "unknown_issuer",
            CertFault::SelfSigned => "self_signed",
            CertFault::IncompleteChain => "incomplete_chain",
            CertFault::BadEncoding => "bad_encoding",
            CertFault::Other => "other",
        }
    }

    /// A sentence for people.
    pub fn describe(self) -> &'static str {
        match self {
            CertFault::Expired => "the certificate has expired",
            CertFault::NotYetValid => "the certificate is not valid yet",
            CertFault::NameMismatch => "the certificate is not valid for this host name",
            CertFault::UnknownIssuer => "the chain ends in a CA that is not trusted",
            CertFault::SelfSigned => "the certificate is self-signed",
            CertFault::IncompleteChain => {
                "the chain is incomplete: an intermediate certificate is missing"
            }
            CertFault::BadEncoding => "the certificate cannot be parsed",
            CertFault::Other => "the certificate was rejected",
        }
    }
}

/// The judgement of one presented chain for one host name. Trust, name and time are judged
/// independently; `first_error` is what a WebPKI sender reports (it stops at the first fault).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertVerdict {
    pub trusted: bool,
    pub name_matches: bool,
    pub time_valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<CertFault>,
    /// Why the chain is not trusted, judged at an instant inside the leaf's validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_error: Option<CertFault>,
    /// The verifier's own words for the trust failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl CertVerdict {
    /// A sender would accept this certificate.
    pub fn is_valid(&self) -> bool {
        self.trusted && self.name_matches && self.time_valid
    }

    /// Every fault that holds, in the order a sender checks them.
    pub fn faults(&self) -> Vec<CertFault> {
        let mut faults = Vec::new();
        let time = self.time_fault();
        if let Some(time) = time {
            faults.push(time);
        }
        match self.trust_error {
            // The leaf is out of date: a chain certificate's dates are the same fault seen
            // again (one certificate, one fault), not a second one.
            Some(CertFault::Expired | CertFault::NotYetValid) if time.is_some() => {}
            Some(trust) => faults.push(trust),
            None => {}
        }
        if !self.name_matches {
            faults.push(CertFault::NameMismatch);
        }
        faults
    }

    /// The leaf's own time fault, if its dates do not cover the instant it was judged at.
    pub fn time_fault(&self) -> Option<CertFault> {
        match self.first_error {
            Some(f @ (CertFault::Expired | CertFault::NotYetValid)) if !self.time_valid => Some(f),
            _ if !self.time_valid => Some(CertFault::Expired),
            _ => None,
        }
    }

    fn unparsable(detail: String) -> CertVerdict {
        CertVerdict {
            trusted: false,
            name_matches: false,
            time_valid: false,
            first_error: Some(CertFault::BadEncoding),
            trust_error: Some(CertFault::BadEncoding),
            detail: Some(detail),
        }
    }
}

/// An instant inside the leaf's validity at which every presented certificate is valid, if
/// there is one (the middle of the overlap), else the middle of the leaf's validity.
fn trust_instant(leaf: &CertInfo, chain: &[CertificateDer<'_>]) -> i64 {
    let mut from = leaf.not_before;
    let mut until = leaf.not_after;
    for der in chain.iter().skip(1) {
        if let Ok((_, cert)) = X509Certificate::from_der(der) {
            from = from.max(cert.validity().not_before.timestamp());
            until = until.min(cert.validity().not_after.timestamp());
        }
    }
    if from <= until {
        from + (until - from) / 2
    } else {
        leaf.not_before + (leaf.not_after - leaf.not_before) / 2
    }
}

/// Which codes a certificate finding uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertTarget {
    Policy,
    Mx,
}

/// Findings for one observed certificate at `now` (unix seconds): every fault that holds, and
/// expiry within `warning`. Messages do not name the address, so equal findings across
/// addresses merge.
pub fn cert_findings(
    leaf: Option<&CertInfo>,
    verdict: &CertVerdict,
    host: &str,
    address: Option<IpAddr>,
    target: CertTarget,
    warning: Duration,
    now: i64,
) -> Vec<Finding> {
    let (expired, expiring, not_yet, mismatch, untrusted) = match target {
        CertTarget::Policy => (
            Code::PolicyCertExpired,
            Code::PolicyCertExpiring,
            Code::PolicyCertNotYetValid,
            Code::PolicyCertNameMismatch,
            Code::PolicyCertUntrusted,
        ),
        CertTarget::Mx => (
            Code::MxCertExpired,
            Code::MxCertExpiring,
            Code::MxCertNotYetValid,
            Code::MxCertNameMismatch,
            Code::MxCertUntrusted,
        ),
    };
    let mut findings = Vec::new();
    let mut add = |code: Code, message: String| {
        let mut finding = Finding::new(code, message).with_host(host);
        if let Some(address) = address {
            finding = finding.with_address(address);
        }
        findings.push(finding);
    };
    let leaf_time = verdict.time_fault();
    for fault in verdict.faults() {
        // The leaf's own dates, or those of a certificate further up the chain.
        let of_leaf = Some(fault) == leaf_time;
        match (fault, leaf) {
            (CertFault::Expired, Some(leaf)) if of_leaf => add(
                expired,
                format!(
                    "the certificate of {host} expired on {} ({} days ago)",
                    format_date(leaf.not_after),
                    (now - leaf.not_after).max(0).div_euclid(86_400)
                ),
            ),
            (CertFault::NotYetValid, Some(leaf)) if of_leaf => add(
                not_yet,
                format!(
                    "the certificate of {host} is not valid before {}",
                    format_date(leaf.not_before)
                ),
            ),
            (CertFault::Expired, None) if of_leaf => {
                add(expired, format!("the certificate of {host} has expired"))
            }
            (CertFault::NotYetValid, None) if of_leaf => add(
                not_yet,
                format!("the certificate of {host} is not valid yet"),
            ),
            (CertFault::Expired, _) => add(
                untrusted,
                format!("a certificate in the chain of {host} has expired"),
            ),
            (CertFault::NotYetValid, _) => add(
                untrusted,
                format!("a certificate in the chain of {host} is not valid yet"),
            ),
            (CertFault::NameMismatch, _) => add(
                mismatch,
                format!(
                    "the certificate of {host} is not valid for {host}: its DNS names are [{}]",
                    leaf.map(|l| l.dns_names.join(", ")).unwrap_or_default()
                ),
            ),
            (other, _) => add(
                untrusted,
                format!(
                    "the certificate of {host} is not trusted: {}{}",
                    other.describe(),
                    leaf.map(|l| format!(" (issuer {})", l.issuer))
                        .unwrap_or_default()
                ),
            ),
        }
    }
    if verdict.time_valid {
        if let Some(leaf) = leaf {
            let left = leaf.not_after.saturating_sub(now);
            let window = i64::try_from(warning.as_secs()).unwrap_or(i64::MAX);
            if left < window {
                add(
                    expiring,
                    format!(
                        "the certificate of {host} expires on {}, in {}",
                        format_date(leaf.not_after),
                        describe_left(left)
                    ),
                );
            }
        }
    }
    findings
}

/// "3 days", "1 day", "17 hours", for the time left before expiry.
fn describe_left(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let days = seconds.div_euclid(86_400);
    match days {
        0 => {
            let hours = seconds.div_euclid(3_600);
            format!("{hours} hour{}", if hours == 1 { "" } else { "s" })
        }
        1 => "1 day".to_string(),
        n => format!("{n} days"),
    }
}

/// The roots we trust and the algorithms we verify with. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TrustStore {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl TrustStore {
    /// Mozilla's roots (webpki-roots), plus the PEM certificates in `extra_pem` if given.
    pub fn new(extra_pem: Option<&[u8]>) -> Result<TrustStore, String> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = extra_pem {
            add_pem(&mut roots, pem)?;
        }
        Ok(TrustStore::from_roots(roots))
    }

    /// Mozilla's roots plus the certificates of the PEM file `ca_file`, if given. The error
    /// names the file.
    pub fn with_ca_file(ca_file: Option<&std::path::Path>) -> Result<TrustStore, String> {
        match ca_file {
            None => TrustStore::new(None),
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
                TrustStore::new(Some(&pem)).map_err(|e| format!("CA file {}: {e}", path.display()))
            }
        }
    }

    /// Only the PEM certificates in `pem` (private PKI, tests).
    pub fn only(pem: &[u8]) -> Result<TrustStore, String> {
        let mut roots = RootCertStore::empty();
        add_pem(&mut roots, pem)?;
        Ok(TrustStore::from_roots(roots))
    }

    pub fn from_roots(roots: RootCertStore) -> TrustStore {
        TrustStore {
            roots: Arc::new(roots),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }

    pub fn roots(&self) -> &Arc<RootCertStore> {
        &self.roots
    }

    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// Judges `chain` (leaf first, as the server sent it) for `host` at `now`.
    pub fn judge(&self, chain: &[CertificateDer<'_>], host: &str, now: UnixTime) -> CertVerdict {
        let Some(leaf_der) = chain.first() else {
            return CertVerdict::unparsable("the server sent no certificate".into());
        };
        let leaf = match CertInfo::from_der(leaf_der) {
            Ok(info) => info,
            Err(e) => return CertVerdict::unparsable(e),
        };
        let parsed = match ParsedCertificate::try_from(leaf_der) {
            Ok(p) => p,
            Err(e) => return CertVerdict::unparsable(e.to_string()),
        };
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);

        // Time, judged on the leaf alone.
        let time_fault = if now_secs > leaf.not_after {
            Some(CertFault::Expired)
        } else if now_secs < leaf.not_before {
            Some(CertFault::NotYetValid)
        } else {
            None
        };

        // Trust, judged at an instant inside the leaf's validity so expiry cannot mask it: where
        // the presented certificates' validity periods overlap (a re-issued intermediate may
        // begin after the middle of the leaf's period), else the middle of the leaf's.
        let trust_time = if time_fault.is_some() {
            let at = trust_instant(&leaf, chain);
            UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(at).unwrap_or(0)))
        } else {
            now
        };
        let algorithms = self.provider.signature_verification_algorithms.all;
        let trust = verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            chain.get(1..).unwrap_or_default(),
            trust_time,
            algorithms,
        );
        let (trust_error, detail) = match trust {
            Ok(()) => (None, None),
            Err(rustls::Error::InvalidCertificate(e)) => {
                (Some(self.classify_trust(&e, chain)), Some(e.to_string()))
            }
            Err(e) => (Some(CertFault::Other), Some(e.to_string())),
        };

        // Name: RFC 6125 DNS-ID in subjectAltName only, wildcard only as the whole left-most label.
        let name_matches = match ServerName::try_from(host) {
            Ok(name) => verify_server_name(&parsed, &name).is_ok(),
            Err(_) => false,
        };

        let first_error = time_fault
            .or(trust_error)
            .or((!name_matches).then_some(CertFault::NameMismatch));
        CertVerdict {
            trusted: trust_error.is_none(),
            name_matches,
            time_valid: time_fault.is_none(),
            first_error,
            trust_error,
            detail,
        }
    }

    fn classify_trust(&self, error: &CertificateError, chain: &[CertificateDer<'_>]) -> CertFault {
        match error {
            CertificateError::UnknownIssuer => self.classify_unknown_issuer(chain),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                // An intermediate has expired (the leaf's own time is judged separately).
                CertFault::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                CertFault::NotYetValid
            }
            CertificateError::BadEncoding => CertFault::BadEncoding,
            _ => CertFault::Other,
        }
    }

    /// Tells a self-signed leaf, a missing intermediate and an untrusted CA apart.
    fn classify_unknown_issuer(&self, chain: &[CertificateDer<'_>]) -> CertFault {
        let parsed: Vec<X509Certificate<'_>> = chain
            .iter()
            .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| c))
            .collect();
        let Some(last) = parsed.last() else {
            return CertFault::BadEncoding;
        };
        let self_issued = last.subject().as_raw() == last.issuer().as_raw();
        if self_issued {
            return if parsed.len() == 1 {
                CertFault::SelfSigned
            } else {
                CertFault::UnknownIssuer
            };
        }
        let issuer = strip_der_header(last.issuer().as_raw());
        let issuer_is_root = self
            .roots
            .roots
            .iter()
            .any(|anchor| Some(anchor.subject.as_ref()) == issuer);
        if issuer_is_root {
            // Signed by a name we trust, but the signature did not verify.
            CertFault::UnknownIssuer
        } else {
            CertFault::IncompleteChain
        }
    }
}

fn add_pem(roots: &mut RootCertStore, pem: &[u8]) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("cannot read PEM certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("cannot use certificate as a trust anchor: {e}"))?;
        added += 1;
    }
    if added == 0 {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) found".into());
    }
    Ok(())
}

/// The contents of a DER SEQUENCE (webpki keeps a trust anchor's subject without its header).
fn strip_der_header(der: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let (len, rest) = match len {
        0..=0x7f => (usize::from(len), rest),
        0x81 => {
            let (&l, rest) = rest.split_first()?;
            (usize::from(l), rest)
        }
        0x82 => {
            let l = rest.get(..2)?;
            (usize::from(l[0]) << 8 | usize::from(l[1]), rest.get(2..)?)
        }
        _ => return None,
    };
    rest.get(..len)
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA, an intermediate valid from `intermediate_from` (unix seconds), and a leaf for
    /// `mx.example.test` valid over `leaf_validity`, signed by the intermediate.
    fn chain_with_late_intermediate(
        intermediate_from: i64,
        leaf_validity: (i64, i64),
    ) -> (TrustStore, Vec<CertificateDer<'static>>) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        use time::OffsetDateTime;
        let at = |t: i64| OffsetDateTime::from_unix_timestamp(t).unwrap();
        let ca_params = |name: &str, from: i64| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.not_before = at(from);
            params.not_after = at(from + 3_650 * 86_400);
            params
        };
        let root_key = KeyPair::generate().unwrap();
        let root_params = ca_params("Test Root", 0);
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);
        let mid_key = KeyPair::generate().unwrap();
        let mid_params = ca_params("Test Intermediate R2", intermediate_from);
        let mid = mid_params.signed_by(&mid_key, &root_issuer).unwrap();
        let mid_issuer = Issuer::new(mid_params, mid_key);
        let mut leaf_params = CertificateParams::new(vec!["mx.example.test".to_string()]).unwrap();
        leaf_params.not_before = at(leaf_validity.0);
        leaf_params.not_after = at(leaf_validity.1);
        leaf_params.use_authority_key_identifier_extension = true;
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &mid_issuer).unwrap();
        let trust = TrustStore::only(root.pem().as_bytes()).unwrap();
        (trust, vec![leaf.der().clone(), mid.der().clone()])
    }

    fn at(t: i64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(t).unwrap()))
    }

    /// Regression: an expired leaf whose (re-issued) intermediate begins after the middle of the
    /// leaf's validity was also reported "not valid before <its notBefore>", a date in the past.
    #[test]
    fn expired_leaf_with_a_newer_intermediate_is_one_fault() {
        let now = 1_800_000_000;
        let day = 86_400;
        // Leaf: 90 days, expired 5 days ago. Intermediate: from 10 days before expiry.
        let (trust, chain) =
            chain_with_late_intermediate(now - 15 * day, (now - 95 * day, now - 5 * day));
        let verdict = trust.judge(&chain, "mx.example.test", at(now));
        assert!(!verdict.time_valid);
        assert_eq!(verdict.faults(), [CertFault::Expired], "{verdict:?}");
        assert!(verdict.trusted, "judged where both are valid: {verdict:?}");
        let leaf = CertInfo::from_der(&chain[0]).unwrap();
        let findings = cert_findings(
            Some(&leaf),
            &verdict,
            "mx.example.test",
            None,
            CertTarget::Mx,
            Duration::from_secs(14 * day as u64),
            now,
        );
        let codes: Vec<Code> = findings.iter().map(|f| f.code).collect();
        assert_eq!(codes, [Code::MxCertExpired]);
        assert!(
            findings[0].message.contains("(5 days ago)"),
            "{}",
            findings[0].message
        );
    }

    /// With no instant where leaf and intermediate are both valid, the chain's time fault is
    /// still folded into the leaf's: one certificate, one fault.
    #[test]
    fn expired_leaf_whose_intermediate_never_overlaps_is_still_one_fault() {
        let now = 1_800_000_000;
        let day = 86_400;
        let (trust, chain) =
            chain_with_late_intermediate(now - 2 * day, (now - 95 * day, now - 5 * day));
        let verdict = trust.judge(&chain, "mx.example.test", at(now));
        assert_eq!(verdict.faults(), [CertFault::Expired], "{verdict:?}");
    }

    /// An intermediate not yet valid beside a leaf in date is a chain fault, named as one.
    #[test]
    fn not_yet_valid_intermediate_is_a_chain_fault_not_the_leafs() {
        let now = 1_800_000_000;
        let day = 86_400;
        let (trust, chain) =
            chain_with_late_intermediate(now + 2 * day, (now - 10 * day, now + 80 * day));
        let verdict = trust.judge(&chain, "mx.example.test", at(now));
        assert!(verdict.time_valid);
        assert_eq!(verdict.faults(), [CertFault::NotYetValid]);
        let leaf = CertInfo::from_der(&chain[0]).unwrap();
        let findings = cert_findings(
            Some(&leaf),
            &verdict,
            "mx.example.test",
            None,
            CertTarget::Mx,
            Duration::from_secs(14 * day as u64),
            now,
        );
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].code, Code::MxCertUntrusted);
        assert_eq!(
            findings[0].message,
            "a certificate in the chain of mx.example.test is not valid yet"
        );
    }

    #[test]
    fn strip_header_short_and_long_forms() {
        assert_eq!(strip_der_header(&[0x30, 2, 1, 2]), Some(&[1u8, 2][..]));
        let mut long = vec![0x30, 0x81, 3];
        long.extend([7, 8, 9]);
        assert_eq!(strip_der_header(&long), Some(&[7u8, 8, 9][..]));
        assert_eq!(strip_der_header(&[0x31, 0]), None);
        assert_eq!(strip_der_header(&[0x30, 5, 1]), None);
        assert_eq!(strip_der_header(&[]), None);
    }

    #[test]
    fn judge_without_chain_is_bad_encoding() {
        let store = TrustStore::new(None).unwrap();
        let v = store.judge(&[], "mx.example.test", UnixTime::now());
        assert!(!v.is_valid());
        assert_eq!(v.first_error, Some(CertFault::BadEncoding));
        let junk = CertificateDer::from(vec![1u8, 2, 3]);
        let v = store.judge(&[junk], "mx.example.test", UnixTime::now());
        assert_eq!(v.first_error, Some(CertFault::BadEncoding));
    }

    #[test]
    fn days_left_rounds_down_and_goes_negative() {
        let info = CertInfo {
            subject: String::new(),
            issuer: String::new(),
            dns_names: vec![],
            serial: String::new(),
            key_type: String::new(),
            not_before: 0,
            not_after: 10 * 86_400,
            sha256_fingerprint: String::new(),
        };
        assert_eq!(info.days_left(0), 10);
        assert_eq!(info.days_left(86_400 + 1), 8);
        assert_eq!(info.days_left(11 * 86_400), -1);
    }
}
