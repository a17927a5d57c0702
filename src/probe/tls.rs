//! TLS client handshakes that capture the presented chain first and judge it second, so a
//! failed verification still tells what the server presented and why a sender would refuse it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{AlertDescription, ClientConfig, DigitallySignedStruct, Error, SignatureScheme};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::stage::cert::{CertInfo, CertVerdict, TrustStore};

/// What one TLS handshake showed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsObservation {
    /// "TLSv1.3", "TLSv1.2".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// IANA name, e.g. "TLS13_AES_256_GCM_SHA384".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher_suite: Option<String>,
    /// Number of certificates the server sent.
    pub chain_length: usize,
    /// The leaf, parsed; present whenever the server sent a parsable certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf: Option<CertInfo>,
    /// The judgement of the chain for the name we asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<CertVerdict>,
}

/// Why a handshake did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsFailureKind {
    /// The handshake did not finish before its deadline.
    Timeout,
    /// The server only speaks TLS versions below 1.2 (RFC 8461 §7.2 requires 1.2 or later).
    VersionTooOld,
    /// No TLS version or cipher suite in common (e.g. a server offering only CBC or RSA key
    /// exchange); not a certificate fault.
    NoCommonVersion,
    /// Anything else: garbage instead of TLS, a reset, a fatal alert.
    HandshakeFailed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFailure {
    pub kind: TlsFailureKind,
    /// The TLS library's words.
    pub detail: String,
    /// Whatever the handshake saw before it failed (the chain, if it got that far).
    pub observation: TlsObservation,
}

/// Makes handshakes against one trust store. Cheap to clone; share one per process.
#[derive(Clone, Debug)]
pub struct TlsClient {
    trust: TrustStore,
    webpki: Arc<WebPkiServerVerifier>,
}

impl TlsClient {
    pub fn new(trust: TrustStore) -> Result<TlsClient, String> {
        let webpki = WebPkiServerVerifier::builder_with_provider(
            trust.roots().clone(),
            trust.provider().clone(),
        )
        .build()
        .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
        Ok(TlsClient { trust, webpki })
    }

    pub fn trust(&self) -> &TrustStore {
        &self.trust
    }

    /// Runs a handshake over `io` with SNI `server_name`, within `deadline`. The certificate
    /// never fails the handshake: it is recorded and judged, and the verdict is in the
    /// observation. Handshake signatures are still verified against the presented key.
    pub async fn handshake<IO>(
        &self,
        io: IO,
        server_name: &str,
        alpn: &[&[u8]],
        deadline: Duration,
    ) -> Result<(TlsStream<IO>, TlsObservation), TlsFailure>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let record = Arc::new(Mutex::new(Vec::new()));
        let verifier = Arc::new(RecordingVerifier {
            inner: self.webpki.clone(),
            chain: record.clone(),
        });
        let observe = |record: &Mutex<Vec<CertificateDer<'static>>>| {
            let chain = match record.lock() {
                Ok(chain) => chain.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            };
            self.observe(&chain, server_name)
        };
        let name = match ServerName::try_from(server_name.to_string()) {
            Ok(name) => name,
            Err(e) => {
                return Err(TlsFailure {
                    kind: TlsFailureKind::HandshakeFailed,
                    detail: format!("{server_name:?} is not a valid TLS server name: {e}"),
                    observation: TlsObservation::default(),
                })
            }
        };
        let mut config = match ClientConfig::builder_with_provider(self.trust.provider().clone())
            .with_safe_default_protocol_versions()
        {
            Ok(builder) => builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth(),
            Err(e) => {
                return Err(TlsFailure {
                    kind: TlsFailureKind::HandshakeFailed,
                    detail: format!("TLS configuration error: {e}"),
                    observation: TlsObservation::default(),
                })
            }
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config.resumption = rustls::client::Resumption::disabled();
        let connector = TlsConnector::from(Arc::new(config));

        let result = tokio::time::timeout(deadline, connector.connect(name, io)).await;
        match result {
            Err(_) => Err(TlsFailure {
                kind: TlsFailureKind::Timeout,
                detail: format!("TLS handshake not finished after {deadline:?}"),
                observation: observe(&record),
            }),
            Ok(Err(e)) => Err(TlsFailure {
                kind: classify(&e),
                detail: e.to_string(),
                observation: observe(&record),
            }),
            Ok(Ok(stream)) => {
                let mut observation = observe(&record);
                let (_, connection) = stream.get_ref();
                observation.version = connection.protocol_version().map(version_name);
                observation.cipher_suite = connection
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()));
                Ok((stream, observation))
            }
        }
    }

    /// Describes and judges a chain that was presented for `server_name`.
    pub fn observe(&self, chain: &[CertificateDer<'_>], server_name: &str) -> TlsObservation {
        if chain.is_empty() {
            return TlsObservation::default();
        }
        TlsObservation {
            version: None,
            cipher_suite: None,
            chain_length: chain.len(),
            leaf: chain.first().and_then(|der| CertInfo::from_der(der).ok()),
            verdict: Some(self.trust.judge(chain, server_name, UnixTime::now())),
        }
    }
}

fn version_name(version: rustls::ProtocolVersion) -> String {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        rustls::ProtocolVersion::TLSv1_1 => "TLSv1.1".into(),
        rustls::ProtocolVersion::TLSv1_0 => "TLSv1.0".into(),
        other => format!("{other:?}"),
    }
}

/// Folds a handshake error into what an operator acts on.
fn classify(error: &std::io::Error) -> TlsFailureKind {
    use rustls::PeerIncompatible as P;
    let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return TlsFailureKind::HandshakeFailed;
    };
    match tls {
        Error::PeerIncompatible(P::ServerDoesNotSupportTls12Or13)
        | Error::AlertReceived(AlertDescription::ProtocolVersion) => TlsFailureKind::VersionTooOld,
        Error::PeerIncompatible(_)
        | Error::AlertReceived(AlertDescription::HandshakeFailure)
        | Error::AlertReceived(AlertDescription::InsufficientSecurity) => {
            TlsFailureKind::NoCommonVersion
        }
        _ => TlsFailureKind::HandshakeFailed,
    }
}

/// Records the presented chain and accepts it; judging happens afterwards in `TrustStore::judge`.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    chain: Arc<Mutex<Vec<CertificateDer<'static>>>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let mut chain = Vec::with_capacity(1 + intermediates.len());
        chain.push(end_entity.clone().into_owned());
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        match self.chain.lock() {
            Ok(mut slot) => *slot = chain,
            Err(poisoned) => *poisoned.into_inner() = chain,
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
