//! How the [`Client`](crate::client::Client) reaches its server: TCP, and for `https://` URLs
//! (feature `tls`) rustls, checking the server against the system's trust store or a CA file,
//! presenting a client certificate if one is set (koji's `serverca` and `cert`).

use std::path::PathBuf;

use hyper_util::client::legacy::connect::HttpConnector;

/// The client's connector.
#[cfg(feature = "tls")]
pub(crate) type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
/// The client's connector.
#[cfg(not(feature = "tls"))]
pub(crate) type Connector = HttpConnector;

/// The TLS a client uses for an `https://` URL.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsOptions {
    /// PEM CA certificates to trust instead of the system's.
    pub(crate) ca_file: Option<PathBuf>,
    /// A PEM file holding the client's certificate chain and its private key.
    pub(crate) cert_file: Option<PathBuf>,
}

/// TCP with Nagle off; `tls_above`: a TLS layer above takes `https` URIs, so this one must
/// let them through.
fn tcp(tls_above: bool) -> HttpConnector {
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.enforce_http(!tls_above);
    tcp
}

/// A connector for a URL that is `https` or not. Errors say which file could not be used.
#[cfg(not(feature = "tls"))]
pub(crate) fn connector(https: bool, _tls: &TlsOptions) -> Result<Connector, String> {
    if https {
        return Err("https needs the `tls` cargo feature of hub".into());
    }
    Ok(tcp(false))
}

/// A connector for a URL that is `https` or not. Errors say which file could not be used.
#[cfg(feature = "tls")]
pub(crate) fn connector(https: bool, tls: &TlsOptions) -> Result<Connector, String> {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::{ClientConfig, RootCertStore};

    let file = |path: &PathBuf, e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut roots = RootCertStore::empty();
    // An `http` URL never uses them: the system's store is not read for nothing.
    if https {
        match &tls.ca_file {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| file(path, &e))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(file(path, &"no usable CA certificate in it"));
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
                if roots.is_empty() {
                    return Err(format!(
                        "no trusted CA certificates found on this system ({} errors); \
                         name a CA file",
                        native.errors.len()
                    ));
                }
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match &tls.cert_file {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let chain = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| file(path, &e))?;
            let key = PrivateKeyDer::from_pem_file(path).map_err(|e| file(path, &e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| file(path, &e))?
        }
    };
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp(true)))
}
