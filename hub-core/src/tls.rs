//! HTTPS: the server's certificate, client certificates, and who they say the client is.
//!
//! With `tls_cert_file` and `tls_key_file` set (and the `tls` cargo feature, on by default in
//! `hub`), every connection is TLS (rustls: 1.2 and 1.3, ALPN `http/1.1`). The handshake runs
//! on the IO unit once the client's first bytes arrive, within `socket_timeout_ms`; a
//! connection that fails it is closed and counted in `tls_failures`. A client that speaks
//! plain HTTP to the TLS port is answered `400` in plain text, so it learns why.
//!
//! With `tls_client_ca_file` set, the server asks for a client certificate (koji's
//! `ssl_login`) and checks it against those CAs; the certificate of a client that passed
//! reaches the [`Authenticator`](crate::Authenticator) as
//! [`AuthRequest::client_cert`](crate::AuthRequest::client_cert) on every request of the
//! connection. Mapping it to a user (koji takes the subject's `CN`) is the authenticator's
//! call. With `tls_client_crl_file` too, a certificate those CAs revoked is refused.
//!
//! Renewed files are taken without a restart: [`TlsReloadHandle::reload`], or `SIGHUP` to
//! a server started with signals. The certificate served is logged when it is read, with
//! its end date, and a warning if it is not valid now.

use std::fmt;

use crate::config::ConfigError;

/// The certificate a client presented and the server verified.
///
/// ```
/// # fn name(cert: &hub_core::ClientCert) -> Option<&str> {
/// // koji's `DNUsernameComponent = CN`: the user is the subject's common name.
/// cert.common_name()
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCert {
    der: Vec<u8>,
    subject: String,
    attributes: Option<Vec<(String, String)>>,
    common_name: Option<String>,
}

impl ClientCert {
    /// The subject's distinguished name, its attributes in the certificate's order (most
    /// significant first) joined by `, ` (those of one multi-valued RDN by ` + `), a value's
    /// `,` `+` `"` `\` `<` `>` `;` and its leading or trailing space escaped with `\` as
    /// RFC 4514 does: `O=Example, CN=alice`. For logs and display: to compare a subject with
    /// a configured one, compare [`subject_attributes`](Self::subject_attributes).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The subject's attributes in the certificate's order, each as its type's short name
    /// (`CN`, `O`, `OU`, `C`, `DC`, ..., or the OID in dotted form) and its value as
    /// written; `None` if a value is not text (a `NumericString`, `PrintableString`,
    /// `UTF8String` or `IA5String`), so that such a subject matches no configured one.
    pub fn subject_attributes(&self) -> Option<&[(String, String)]> {
        self.attributes.as_deref()
    }

    /// The subject's first common name (`CN`), if it has one that is text.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The certificate itself, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

impl fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCert")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Reloads a running server's certificate, key and client CAs from the files its config
/// names, for renewing them without a restart. A server started with signals does this on
/// `SIGHUP`. Get one from [`RunningServer::tls_reload_handle`](crate::RunningServer::tls_reload_handle).
///
/// New connections handshake with what was read; connections already open keep the session
/// they have. If the files do not make a valid configuration (a key that does not match the
/// certificate, a file half written), the server keeps serving what it had.
#[derive(Debug, Clone)]
pub struct TlsReloadHandle {
    acceptor: Acceptor,
}

impl TlsReloadHandle {
    pub(crate) fn new(acceptor: Acceptor) -> Self {
        Self { acceptor }
    }

    /// Reads `tls_cert_file`, `tls_key_file`, `tls_client_ca_file` and `tls_client_crl_file`
    /// again. The error names
    /// the key whose file could not be used; nothing changed then.
    pub fn reload(&self) -> Result<(), ConfigError> {
        self.acceptor.reload()?;
        tracing::info!("TLS files reloaded");
        Ok(())
    }
}

#[cfg(not(feature = "tls"))]
pub(crate) use disabled::{acceptor, handshake, starts_handshake, Acceptor};
#[cfg(feature = "tls")]
pub(crate) use enabled::{acceptor, handshake, starts_handshake, Acceptor};

/// Without the `tls` feature: a TLS configuration is refused when the server is built.
#[cfg(not(feature = "tls"))]
mod disabled {
    use std::io;

    use tokio::net::TcpStream;

    use super::ClientCert;
    use crate::config::{Config, ConfigError};
    use crate::transport::Transport;

    /// Never made.
    #[derive(Debug, Clone)]
    pub(crate) enum Acceptor {}

    impl Acceptor {
        pub(crate) fn reload(&self) -> Result<(), ConfigError> {
            match *self {}
        }
    }

    pub(crate) fn acceptor(config: &Config) -> Result<Option<Acceptor>, ConfigError> {
        if config.tls() {
            return Err(ConfigError::key(
                "tls_cert_file",
                "this build of hub has no TLS: enable the `tls` cargo feature",
            ));
        }
        Ok(None)
    }

    pub(crate) async fn handshake(
        acceptor: &Acceptor,
        _stream: TcpStream,
    ) -> Result<(Transport, Option<ClientCert>), (io::Error, TcpStream)> {
        match *acceptor {}
    }

    pub(crate) fn starts_handshake(_first: u8) -> bool {
        false
    }
}

#[cfg(feature = "tls")]
mod enabled {
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, PoisonError, RwLock};

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
    use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
    use rustls::{RootCertStore, ServerConfig};
    use tokio::net::TcpStream;

    use super::ClientCert;
    use crate::config::{Config, ConfigError};
    use crate::transport::Transport;

    /// What every connection's handshake starts from: the TLS settings in force, replaced
    /// whole by [`Acceptor::reload`]. A handshake reads them once, under a lock held for an
    /// `Arc` clone (nothing beside the ~300 µs of the handshake itself).
    #[derive(Clone)]
    pub(crate) struct Acceptor(Arc<Inner>);

    struct Inner {
        files: Files,
        current: RwLock<Arc<ServerConfig>>,
    }

    /// The config keys a reload reads again.
    struct Files {
        cert: PathBuf,
        key: PathBuf,
        client_ca: Option<PathBuf>,
        client_crl: Option<PathBuf>,
        require_client_cert: bool,
    }

    impl std::fmt::Debug for Acceptor {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Acceptor")
                .field("tls_cert_file", &self.0.files.cert)
                .finish_non_exhaustive()
        }
    }

    /// The acceptor `config` asks for, `None` for plain HTTP. Errors name the key whose file
    /// could not be used.
    pub(crate) fn acceptor(config: &Config) -> Result<Option<Acceptor>, ConfigError> {
        let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) else {
            return Ok(None);
        };
        let files = Files {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: config.tls_client_ca_file.clone(),
            client_crl: config.tls_client_crl_file.clone(),
            require_client_cert: config.tls_require_client_cert,
        };
        let current = RwLock::new(server_config(&files)?);
        Ok(Some(Acceptor(Arc::new(Inner { files, current }))))
    }

    impl Acceptor {
        /// Reads the files again and, if they make a valid configuration, serves new
        /// handshakes with it; otherwise keeps the one in force and says why.
        pub(crate) fn reload(&self) -> Result<(), ConfigError> {
            let fresh = server_config(&self.0.files)?;
            // A fresh session cache goes with it: a session resumed from the old one would
            // skip checking its client certificate against CAs that may have changed.
            *self
                .0
                .current
                .write()
                .unwrap_or_else(PoisonError::into_inner) = fresh;
            Ok(())
        }

        fn current(&self) -> Arc<ServerConfig> {
            Arc::clone(
                &self
                    .0
                    .current
                    .read()
                    .unwrap_or_else(PoisonError::into_inner),
            )
        }
    }

    /// Builds the server side's settings from `files`, logging the certificate it will serve.
    fn server_config(files: &Files) -> Result<Arc<ServerConfig>, ConfigError> {
        let chain = certificates("tls_cert_file", &files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|e| file_error("tls_key_file", &files.key, e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::key("tls_cert_file", e))?;
        let builder = match &files.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca_file) => {
                let mut roots = RootCertStore::empty();
                for ca in certificates("tls_client_ca_file", ca_file)? {
                    roots
                        .add(ca)
                        .map_err(|e| file_error("tls_client_ca_file", ca_file, e))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
                // The client's own certificate is what a CA revokes; its chain is the CA's.
                let verifier = match &files.client_crl {
                    None => verifier,
                    Some(crl_file) => verifier
                        .with_crls(revocation_lists(crl_file)?)
                        .only_check_end_entity_revocation(),
                };
                let verifier = if files.require_client_cert {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier.build().map_err(|e| match (e, &files.client_crl) {
                    (VerifierBuilderError::InvalidCrl(why), Some(crl_file)) => file_error(
                        "tls_client_crl_file",
                        crl_file,
                        format!("a revocation list the verifier cannot use: {why:?}"),
                    ),
                    (e, _) => file_error("tls_client_ca_file", ca_file, e),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let leaf = chain.first().map(|c| c.as_ref().to_vec());
        let mut server = builder
            .with_single_cert(chain, key)
            .map_err(|e| ConfigError::key("tls_key_file", e))?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        if let Some(leaf) = leaf {
            log_certificate(&files.cert, &leaf);
        }
        Ok(Arc::new(server))
    }

    /// Says which certificate is served and until when; warns when that is not now (an
    /// expired certificate is the usual reason clients suddenly refuse a hub).
    fn log_certificate(path: &Path, der: &[u8]) {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return;
        };
        let validity = cert.validity();
        let file = path.display();
        let subject = cert.subject();
        let until = validity.not_after;
        if validity.is_valid() {
            tracing::info!(%file, %subject, %until, "serving TLS certificate");
        } else {
            tracing::warn!(
                %file, %subject, from = %validity.not_before, %until,
                "serving a TLS certificate that is not valid now: clients will refuse it"
            );
        }
    }

    /// The revocation lists in `path` (`tls_client_crl_file`), each logged with its issuer,
    /// what it revokes and until when it is current; a warning for one past its next update
    /// (it is still used: an out-of-date list revokes no less than it did).
    fn revocation_lists(
        path: &Path,
    ) -> Result<Vec<CertificateRevocationListDer<'static>>, ConfigError> {
        const KEY: &str = "tls_client_crl_file";
        let lists = CertificateRevocationListDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| file_error(KEY, path, e))?;
        if lists.is_empty() {
            return Err(file_error(KEY, path, "no revocation list (X509 CRL) in it"));
        }
        let file = path.display();
        for der in &lists {
            let (_, crl) = x509_parser::parse_x509_crl(der)
                .map_err(|e| file_error(KEY, path, format!("a list that does not parse: {e}")))?;
            // The verifier (webpki) takes version 2 lists only; said here, or its build error
            // names no list.
            if crl.version().is_none() {
                return Err(file_error(
                    KEY,
                    path,
                    format!(
                        "a version 1 revocation list (issuer {}), which is not supported: \
                         `openssl ca -gencrl` writes version 2 when the CA has a crlnumber file",
                        crl.issuer()
                    ),
                ));
            }
            let issuer = crl.issuer();
            let revoked = crl.iter_revoked_certificates().count();
            match crl.next_update() {
                Some(next) if next < x509_parser::time::ASN1Time::now() => tracing::warn!(
                    %file, %issuer, revoked, next_update = %next,
                    "certificate revocation list past its next update: get a fresh one"
                ),
                next => tracing::info!(
                    %file, %issuer, revoked, next_update = ?next.map(|t| t.to_string()),
                    "checking client certificates against a revocation list"
                ),
            }
        }
        Ok(lists)
    }

    fn certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| file_error(key, path, e))?;
        if certs.is_empty() {
            return Err(file_error(key, path, "no certificate in it"));
        }
        Ok(certs)
    }

    fn file_error(key: &str, path: &Path, e: impl std::fmt::Display) -> ConfigError {
        ConfigError::key(key, format!("{}: {e}", path.display()))
    }

    /// Runs the server side of the handshake on `stream`: the TLS stream, and the client's
    /// certificate if it sent one; or why it failed, and the socket (its alert to the client
    /// written, for the caller to close without resetting it).
    pub(crate) async fn handshake(
        acceptor: &Acceptor,
        stream: TcpStream,
    ) -> Result<(Transport, Option<ClientCert>), (io::Error, TcpStream)> {
        let tls = tokio_rustls::TlsAcceptor::from(acceptor.current())
            .accept(stream)
            .into_fallible()
            .await?;
        let cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(<[_]>::first)
            .map(|der| client_cert(der.as_ref()));
        Ok((Transport::Tls(Box::new(tls)), cert))
    }

    /// The parts of a verified certificate an authenticator needs (rustls checked its chain
    /// and validity already; the parse cannot fail on a certificate webpki accepted, and
    /// if it somehow did, the client still has its DER with an empty subject).
    fn client_cert(der: &[u8]) -> ClientCert {
        let parsed = x509_parser::parse_x509_certificate(der)
            .ok()
            .map(|(_, c)| c);
        let attributes = parsed
            .as_ref()
            .and_then(|c| subject_attributes(c.subject()));
        let subject = match (&attributes, &parsed) {
            (Some(_), Some(c)) => escaped_subject(c.subject()),
            (None, Some(c)) => c.subject().to_string(),
            (_, None) => String::new(),
        };
        let common_name = parsed.as_ref().and_then(|c| {
            c.subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_owned)
        });
        ClientCert {
            der: der.to_vec(),
            subject,
            attributes,
            common_name,
        }
    }

    /// An attribute's type as its short name, or its OID dotted.
    fn attribute_type(attr: &x509_parser::x509::AttributeTypeAndValue<'_>) -> String {
        let registry = x509_parser::objects::oid_registry();
        x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
            .map_or_else(|_| attr.attr_type().to_id_string(), str::to_owned)
    }

    /// Each attribute of `name` as text, in order (see [`ClientCert::subject_attributes`]).
    fn subject_attributes(name: &x509_parser::x509::X509Name<'_>) -> Option<Vec<(String, String)>> {
        name.iter_attributes()
            .map(|attr| Some((attribute_type(attr), attr.as_str().ok()?.to_owned())))
            .collect()
    }

    /// `name` written as [`ClientCert::subject`] says, its values escaped.
    fn escaped_subject(name: &x509_parser::x509::X509Name<'_>) -> String {
        let mut out = String::new();
        for (i, rdn) in name.iter_rdn().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            for (j, attr) in rdn.iter().enumerate() {
                if j > 0 {
                    out.push_str(" + ");
                }
                out.push_str(&attribute_type(attr));
                out.push('=');
                out.push_str(&escape_value(attr.as_str().unwrap_or_default()));
            }
        }
        out
    }

    /// RFC 4514's escapes for an attribute value.
    fn escape_value(value: &str) -> String {
        let last = value.chars().count().saturating_sub(1);
        let mut out = String::with_capacity(value.len());
        for (i, c) in value.chars().enumerate() {
            let edge_space = c == ' ' && (i == 0 || i == last);
            if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
                || edge_space
                || (i == 0 && c == '#')
            {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    /// Whether `first`, a connection's first byte, can start a TLS handshake (a handshake
    /// record, 22); a plain HTTP request starts with a method's letter.
    pub(crate) fn starts_handshake(first: u8) -> bool {
        first == 22
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn values_are_escaped_as_rfc_4514_says() {
            assert_eq!(super::escape_value("kojiweb"), "kojiweb");
            assert_eq!(
                super::escape_value("web, O=x+y"),
                r"web\, O=x\+y",
                "a separator within a value"
            );
            assert_eq!(super::escape_value(r#"a"b\c<d>e;"#), r#"a\"b\\c\<d\>e\;"#);
            assert_eq!(super::escape_value(" kojiweb "), r"\ kojiweb\ ");
            assert_eq!(super::escape_value("#1 a b"), r"\#1 a b");
            assert_eq!(super::escape_value(""), "");
        }
    }
}
