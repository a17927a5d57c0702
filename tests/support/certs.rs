//! A test PKI minted with rcgen at test time, so no certificate in the repository can expire.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// When a leaf is valid, relative to now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// From 30 days ago to 60 days and 12 hours ahead (the half day keeps "days left" stable).
    Valid,
    /// From 60 days ago until `n` days and 12 hours ahead.
    ExpiresInDays(i64),
    /// From 100 days ago until `n` days ago.
    ExpiredDaysAgo(i64),
    /// From 10 days ahead to 100 days ahead.
    NotYetValid,
}

impl Validity {
    fn window(self) -> (OffsetDateTime, OffsetDateTime) {
        let now = OffsetDateTime::now_utc();
        match self {
            Validity::Valid => (
                now - Duration::days(30),
                now + Duration::days(60) + Duration::hours(12),
            ),
            Validity::ExpiresInDays(n) => (
                now - Duration::days(60),
                now + Duration::days(n) + Duration::hours(12),
            ),
            Validity::ExpiredDaysAgo(n) => (now - Duration::days(100), now - Duration::days(n)),
            Validity::NotYetValid => (now + Duration::days(10), now + Duration::days(100)),
        }
    }
}

/// A certificate authority that signs leaves (and intermediates).
pub struct TestCa {
    pub cert_der: CertificateDer<'static>,
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// A self-signed root named `name`.
    pub fn new(name: &str) -> TestCa {
        let params = ca_params(name);
        let key = KeyPair::generate().expect("generate CA key");
        let cert = params.self_signed(&key).expect("self-sign CA");
        TestCa {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, name: &str) -> TestCa {
        let params = ca_params(name);
        let key = KeyPair::generate().expect("generate intermediate key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign intermediate");
        TestCa {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names`, with the chain [leaf].
    pub fn leaf(&self, names: &[&str], validity: Validity) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        let (not_before, not_after) = validity.window();
        params.not_before = not_before;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("generate leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf {
            chain: vec![cert.der().clone()],
            key_der: key.serialize_der(),
            not_after: not_after.unix_timestamp(),
        }
    }
}

/// A server certificate, its chain as the server will send it, and its key.
#[derive(Clone)]
pub struct Leaf {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
    pub not_after: i64,
}

impl Leaf {
    /// A self-signed certificate for `names`.
    pub fn self_signed(names: &[&str], validity: Validity) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("self"));
        let (not_before, not_after) = validity.window();
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-sign");
        Leaf {
            chain: vec![cert.der().clone()],
            key_der: key.serialize_der(),
            not_after: not_after.unix_timestamp(),
        }
    }

    /// The same leaf, sending `extra` after it (intermediates, or a root).
    pub fn with_chain(mut self, extra: &[&TestCa]) -> Leaf {
        self.chain
            .extend(extra.iter().map(|ca| ca.cert_der.clone()));
        self
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// A rustls server config presenting this chain (TLS 1.2 and 1.3).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::new(self.server_config_with(&[&rustls::version::TLS13, &rustls::version::TLS12]))
    }

    /// A rustls server config limited to `versions`.
    pub fn server_config_with(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> rustls::ServerConfig {
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(self.chain.clone(), self.key())
        .expect("server certificate")
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.distinguished_name.push(DnType::CommonName, name);
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(365);
    params.not_after = now + Duration::days(3650);
    params
}
