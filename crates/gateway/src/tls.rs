//! Optional TLS (rustls with the ring provider) for the shim's second listener and for the
//! client.
//!
//! The Connexion client itself speaks plain TCP, so the TLS listener serves a TLS-terminating
//! front (stunnel-style, next to the cataloguers' workstations) or `bibgate send --tls`; the
//! bytes inside the TLS session are the same protocol.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Why a TLS configuration could not be built. Messages name the file, never key material.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| {
        TlsError(format!(
            "could not read the {what} {:?}: {e}",
            path.display().to_string()
        ))
    })
}

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display().to_string();
    let pem = read_pem(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("the {what} {shown:?} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "the {what} {shown:?} holds no CERTIFICATE"
        )));
    }
    Ok(certs)
}

/// The server side: a certificate chain and its private key.
#[derive(Clone)]
pub struct TlsServer {
    pub(crate) acceptor: TlsAcceptor,
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer").finish_non_exhaustive()
    }
}

impl TlsServer {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
    /// SEC1). TLS 1.2 and 1.3, no client certificates.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsServer, TlsError> {
        let chain = certificates(cert, "TLS certificate")?;
        let key_shown = key.display().to_string();
        let key_pem = read_pem(key, "TLS private key")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            TlsError(format!(
                "the TLS private key {key_shown:?} holds no usable private key: {e}"
            ))
        })?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS configuration: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                TlsError(format!(
                    "the TLS certificate and private key {key_shown:?} do not fit together: {e}"
                ))
            })?;
        Ok(TlsServer {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// The client side: which roots to trust and the name the server's certificate must carry.
#[derive(Clone)]
pub struct TlsClient {
    pub(crate) connector: TlsConnector,
    pub(crate) server_name: ServerName<'static>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Trusts the certificates in `ca_pem` (for a private CA or a self-signed server), or
    /// else the system's trust store; the server must present a certificate for
    /// `server_name` (a DNS name or an IP address).
    pub fn new(server_name: &str, ca_pem: Option<&Path>) -> Result<TlsClient, TlsError> {
        let mut roots = RootCertStore::empty();
        match ca_pem {
            Some(path) => {
                for cert in certificates(path, "CA certificate file")? {
                    roots.add(cert).map_err(|e| {
                        TlsError(format!(
                            "a certificate in {:?} cannot be a trust anchor: {e}",
                            path.display().to_string()
                        ))
                    })?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                let (added, _ignored) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    return Err(TlsError(
                        "no trusted certificates in the system's trust store; give --tls-ca".into(),
                    ));
                }
            }
        }
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| TlsError(format!("{server_name:?} is not a TLS server name: {e}")))?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS configuration: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}
