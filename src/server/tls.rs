//! AutoMTLS, as go-plugin sets it up with Terraform.
//!
//! Terraform passes its client certificate in `PLUGIN_CLIENT_CERT` and
//! expects the plugin's own certificate in the handshake line. Terraform's
//! certificate is self-signed ECDSA P-521 and flagged as a CA; standard
//! WebPKI client verification refuses a CA certificate as an end entity (and
//! the default ring backend has no P-521 at all), so the verifier here pins
//! the exact certificate bytes instead and checks the handshake signature
//! with aws-lc-rs, which does support P-521.
//!
//! Start-up cost: every TLS handshake draws on aws-lc's random generator
//! (key exchange, server random), so its first seeding comes before
//! Terraform's first call is answered. Seeded from CPU jitter entropy, aws-lc's
//! default, that takes tens of milliseconds of CPU in every plugin process;
//! the build turns jitter entropy off (`AWS_LC_SYS_NO_JITTER_ENTROPY` in
//! `.cargo/config.toml`), and aws-lc then seeds its per-thread CTR-DRBGs
//! from the operating system (getrandom), mixing in the CPU's RDRAND where
//! there is one. The server key is Ed25519, seeded from getrandom directly,
//! and signs deterministically, so the handshake line itself waits for no
//! generator at all.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("PLUGIN_CLIENT_CERT holds no PEM certificate: {0}")]
    ClientCertPem(String),
    #[error("reading random bytes for the server key from the operating system: {0}")]
    Entropy(String),
    #[error("generating the server certificate: {0}")]
    ServerCert(#[from] rcgen::Error),
    #[error("building the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The server side of AutoMTLS: a freshly generated certificate (announced
/// in the handshake line) and a TLS configuration that accepts only the
/// pinned client certificate.
#[derive(Clone)]
pub struct TlsSetup {
    server_cert_der: CertificateDer<'static>,
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup").finish_non_exhaustive()
    }
}

impl TlsSetup {
    /// Builds the setup for the client certificate in `client_cert_pem`
    /// (the value of `PLUGIN_CLIENT_CERT`).
    pub fn new(client_cert_pem: &str) -> Result<TlsSetup, TlsError> {
        let client_cert = CertificateDer::from_pem_slice(client_cert_pem.as_bytes())
            .map_err(|e| TlsError::ClientCertPem(e.to_string()))?;
        TlsSetup::pinning(client_cert)
    }

    /// Builds the setup accepting exactly `client_cert` (DER).
    pub fn pinning(client_cert: CertificateDer<'static>) -> Result<TlsSetup, TlsError> {
        let provider = crypto_provider();
        let (server_cert_der, server_key) = generate_server_certificate()?;
        let verifier = Arc::new(PinnedClientCert {
            expected: client_cert,
            algorithms: provider.signature_verification_algorithms,
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![server_cert_der.clone()], server_key)?;
        // Newer gRPC clients (Terraform >= 1.13, OpenTofu) refuse a server
        // that does not select h2.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(TlsSetup {
            server_cert_der,
            config: Arc::new(config),
        })
    }

    /// The server certificate, DER: what the handshake line announces.
    pub fn server_cert_der(&self) -> &CertificateDer<'static> {
        &self.server_cert_der
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }
}

/// The DER of a PKCS#8 v1 `OneAsymmetricKey` for an Ed25519 key, less the
/// 32-byte seed that follows it (RFC 8410, section 7).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, // SEQUENCE, 46 bytes
    0x02, 0x01, 0x00, // INTEGER 0: version v1
    0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, // AlgorithmIdentifier: id-Ed25519
    0x04, 0x22, 0x04, 0x20, // privateKey: OCTET STRING holding the 32-byte seed
];

/// A fresh Ed25519 key, as PKCS#8. The seed comes straight from the
/// operating system's generator (getrandom), as Go's own crypto/rand does
/// for Terraform's key: the line then waits for no seeding of aws-lc's
/// generator, whatever entropy source a build of aws-lc uses.
fn generate_server_key() -> Result<PrivatePkcs8KeyDer<'static>, TlsError> {
    let mut pkcs8 = Vec::with_capacity(ED25519_PKCS8_PREFIX.len() + 32);
    pkcs8.extend_from_slice(&ED25519_PKCS8_PREFIX);
    pkcs8.resize(ED25519_PKCS8_PREFIX.len() + 32, 0);
    getrandom::fill(&mut pkcs8[ED25519_PKCS8_PREFIX.len()..])
        .map_err(|e| TlsError::Entropy(e.to_string()))?;
    Ok(PrivatePkcs8KeyDer::from(pkcs8))
}

/// A self-signed certificate for `localhost` (Go checks the SAN, not the CN),
/// valid from 30 seconds ago so a client clock a little behind ours, or
/// rounding to whole seconds, does not see it as not yet valid.
///
/// Ed25519: Go's crypto/tls and crypto/x509 accept it since Go 1.13, older
/// than any Terraform that speaks protocol 6, and its signatures, over this
/// certificate and in every TLS handshake, need no random bytes.
fn generate_server_certificate(
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsError> {
    let key_der = generate_server_key()?;
    let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&key_der, &rcgen::PKCS_ED25519)?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "terraform-provider-rdsrot");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::seconds(30);
    // The certificate lives as long as the process; a year is plenty.
    params.not_after = now + time::Duration::days(365);
    // An Ed25519 key only signs: no key agreement or encipherment.
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key)?;
    Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(key_der)))
}

/// Accepts exactly one client certificate, compared byte for byte, and
/// requires every client to present it.
#[derive(Debug)]
struct PinnedClientCert {
    expected: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Go's client sends its certificate without needing a hint.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    /// Offered in the CertificateRequest. Go's client sends its P-521
    /// certificate only if ECDSA_NISTP521_SHA512 is among these, which the
    /// aws-lc-rs algorithms include.
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The crypto provider the server uses, for callers (tests) that build a
/// matching client.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p521_cert() -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512)
            .expect("aws-lc-rs generates P-521 keys");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("valid SAN");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).expect("self-signed").der().clone()
    }

    #[test]
    fn verifier_accepts_only_the_pinned_certificate() {
        let pinned = p521_cert();
        let other = p521_cert();
        let verifier = PinnedClientCert {
            expected: pinned.clone(),
            algorithms: crypto_provider().signature_verification_algorithms,
        };
        assert!(verifier
            .verify_client_cert(&pinned, &[], UnixTime::now())
            .is_ok());
        assert!(verifier
            .verify_client_cert(&other, &[], UnixTime::now())
            .is_err());
        assert!(verifier.client_auth_mandatory());
    }

    #[test]
    fn verifier_offers_p521() {
        let verifier = PinnedClientCert {
            expected: p521_cert(),
            algorithms: crypto_provider().signature_verification_algorithms,
        };
        assert!(verifier
            .supported_verify_schemes()
            .contains(&SignatureScheme::ECDSA_NISTP521_SHA512));
    }

    #[test]
    fn setup_reads_a_pem_client_certificate_and_sets_alpn() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512)
            .expect("aws-lc-rs generates P-521 keys");
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("valid SAN");
        let pem = params.self_signed(&key).expect("self-signed").pem();
        let setup = TlsSetup::new(&pem).expect("setup from PEM");
        assert_eq!(setup.server_config().alpn_protocols, vec![b"h2".to_vec()]);
        assert!(!setup.server_cert_der().is_empty());
    }

    #[test]
    fn setup_rejects_text_without_a_certificate() {
        let err = TlsSetup::new("not a certificate").expect_err("no PEM block");
        assert!(err.to_string().contains("PLUGIN_CLIENT_CERT"));
    }

    #[test]
    fn server_certificate_names_localhost() {
        let (der, _) = generate_server_certificate().expect("generated");
        // The SAN dNSName "localhost" appears verbatim in the DER.
        assert!(der.windows(9).any(|w| w == b"localhost"));
    }

    /// The CPU time the calling thread has used so far. Linux counts it per
    /// thread; elsewhere the wall clock stands in, which only overstates.
    fn thread_busy_time() -> std::time::Duration {
        #[cfg(target_os = "linux")]
        {
            // The first field is the nanoseconds this thread spent on a CPU
            // up to its last tick or switch: coarse, but tens of
            // milliseconds of seeding show.
            let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat")
                .expect("/proc/thread-self/schedstat is readable");
            let nanos = schedstat
                .split_whitespace()
                .next()
                .and_then(|field| field.parse().ok())
                .expect("schedstat starts with a number");
            std::time::Duration::from_nanos(nanos)
        }
        #[cfg(not(target_os = "linux"))]
        {
            static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            START.get_or_init(std::time::Instant::now).elapsed()
        }
    }

    const FIRST_FILL_MARKER: &str = "first-fill-busy-ns=";

    #[test]
    #[ignore = "run in a process of its own by first_random_bytes_cost_no_jitter_seeding"]
    fn report_cost_of_first_random_bytes() {
        let before = thread_busy_time();
        crypto_provider()
            .secure_random
            .fill(&mut [0u8; 32])
            .expect("aws-lc gives random bytes");
        let busy = thread_busy_time() - before;
        println!("{FIRST_FILL_MARKER}{}", busy.as_nanos());
    }

    /// Every TLS handshake needs aws-lc's generator, so its seeding delays
    /// Terraform's first call. Seeded from CPU jitter entropy it costs tens
    /// of milliseconds of CPU; from the operating system, a system call.
    /// Measured in fresh processes, since other tests have seeded this one's.
    #[test]
    fn first_random_bytes_cost_no_jitter_seeding() {
        let exe = std::env::current_exe().expect("the test binary's path");
        let cheapest = (0..3)
            .map(|_| {
                let out = std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "server::tls::tests::report_cost_of_first_random_bytes",
                        "--ignored",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .output()
                    .expect("the test binary runs");
                let stdout = String::from_utf8_lossy(&out.stdout);
                let nanos: u64 = stdout
                    .lines()
                    // libtest prints the test's name on the same line.
                    .find_map(|line| line.split_once(FIRST_FILL_MARKER))
                    .and_then(|(_, n)| n.trim().parse().ok())
                    .unwrap_or_else(|| panic!("no {FIRST_FILL_MARKER} line in {stdout:?}"));
                std::time::Duration::from_nanos(nanos)
            })
            .min()
            .expect("three runs");
        assert!(
            cheapest < std::time::Duration::from_millis(5),
            "aws-lc's first random bytes took {cheapest:?} of CPU: is it seeding from \
             CPU jitter entropy (AWS_LC_SYS_NO_JITTER_ENTROPY in .cargo/config.toml)?"
        );
    }

    #[test]
    fn server_key_is_ed25519_and_fresh_each_time() {
        let (first_cert, first_key) = generate_server_certificate().expect("generated");
        let (second_cert, second_key) = generate_server_certificate().expect("generated");
        assert_ne!(first_key.secret_der(), second_key.secret_der());
        assert_ne!(first_cert.as_ref(), second_cert.as_ref());
        // The id-Ed25519 OID, 1.3.101.112, names the key and the signature.
        let ed25519_oid = [0x06, 0x03, 0x2b, 0x65, 0x70];
        assert!(first_cert.windows(5).any(|w| w == ed25519_oid));
        // aws-lc parses the PKCS#8 we build, and the key fits the certificate.
        let signer = crypto_provider()
            .key_provider
            .load_private_key(first_key)
            .expect("an Ed25519 key aws-lc accepts");
        assert_eq!(signer.algorithm(), rustls::SignatureAlgorithm::ED25519);
        let certified = rustls::sign::CertifiedKey::new(vec![first_cert], signer);
        assert!(certified.keys_match().is_ok());
    }
}
