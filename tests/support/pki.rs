//! A throwaway PKI for HTTPS tests (rcgen): a CA, the server's certificate, client
//! certificates from that CA or another, in a temp dir of their own. Shared by the root
//! tests (`tests/support`) and the engine's (`hub-core/tests/tls.rs`, by path).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A fresh temp dir for one test's files; removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `hub-{tag}-{pid}` under the system temp dir, emptied first.
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("hub-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir created");
        TempDir(dir)
    }

    /// The path of `name` in the dir, as text (the clients take it in arguments and configs).
    pub fn path(&self, name: &str) -> String {
        self.0
            .join(name)
            .to_str()
            .expect("a UTF-8 temp path")
            .to_owned()
    }

    /// Writes `contents` to `name` in the dir; answers its path.
    pub fn write(&self, name: &str, contents: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("writing {path}: {e}"));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether a TLS server asks clients for certificates (`tls_client_ca_file`) and lets in
/// those without one (`tls_require_client_cert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCerts {
    /// No `tls_client_ca_file`: no certificate is asked for.
    NotAsked,
    /// Checked against the PKI's CA; a client without one is let in.
    Optional,
    /// Checked against the PKI's CA; a client without one is refused.
    Required,
}

/// A throwaway PKI in its own temp dir: a CA (`ca.pem`), the server's certificate for
/// `localhost` and `127.0.0.1` signed by it (`server.pem`, `server.key`), and client
/// certificates made on demand, each in one PEM file holding the certificate and its key
/// (koji's `cert = ~/.koji/client.pem`; Python's `load_cert_chain(path)` reads it too).
pub struct Pki {
    /// Where the files are; removed with the `Pki`.
    pub dir: TempDir,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    /// Numbers the configs written, so each has its own file.
    configs: AtomicUsize,
    /// The serial number of each client certificate the CA signed, by its CN (for CRLs).
    serials: Mutex<HashMap<String, u64>>,
}

impl Pki {
    /// Makes the CA and the server's certificate in a fresh temp dir named after `tag`.
    pub fn new(tag: &str) -> Pki {
        let dir = TempDir::new(&format!("pki-{tag}"));
        // Named after `tag`: two PKIs' CAs are told apart by name, as real ones are.
        let (ca, ca_key) = Self::make_ca(&format!("hub test CA {tag}"));
        dir.write("ca.pem", &ca.pem());
        let pki = Pki {
            dir,
            ca,
            ca_key,
            configs: AtomicUsize::new(0),
            serials: Mutex::default(),
        };
        pki.write_server("server", |_| {});
        pki
    }

    /// A server certificate for `localhost` and `127.0.0.1` signed by the CA, as `edit`
    /// leaves its parameters: written to `{name}.pem` and `{name}.key`.
    fn write_server(&self, name: &str, edit: impl FnOnce(&mut rcgen::CertificateParams)) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        params.distinguished_name = Self::name("localhost");
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        edit(&mut params);
        let server = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        self.dir.write(&format!("{name}.pem"), &server.pem());
        self.dir.write(&format!("{name}.key"), &key.serialize_pem());
    }

    /// A server certificate that expired in 2001: the paths of `expired.pem` and
    /// `expired.key`.
    pub fn expired_server(&self) -> (String, String) {
        self.write_server("expired", |params| {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        });
        (self.dir.path("expired.pem"), self.dir.path("expired.key"))
    }

    /// A self-signed CA named `cn` and its key.
    fn make_ca(cn: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = Self::name(cn);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&key).unwrap();
        (ca, key)
    }

    /// `CN=cn, O=hub tests`.
    fn name(cn: &str) -> rcgen::DistinguishedName {
        let mut name = rcgen::DistinguishedName::new();
        name.push(rcgen::DnType::OrganizationName, "hub tests");
        name.push(rcgen::DnType::CommonName, cn);
        name
    }

    /// The CA certificate's path (the server's `tls_client_ca_file`, the clients' `cafile`).
    pub fn ca(&self) -> String {
        self.dir.path("ca.pem")
    }

    /// A client certificate for `cn` signed by the CA: the path of `{cn}.pem`, holding the
    /// certificate and its key.
    pub fn client(&self, cn: &str) -> String {
        self.client_signed_by(cn, &self.ca, &self.ca_key, &format!("{cn}.pem"))
    }

    /// A client certificate for `cn` signed by another CA, one the server does not trust:
    /// the path of `foreign-{cn}.pem`.
    pub fn foreign_client(&self, cn: &str) -> String {
        let (ca, ca_key) = Self::make_ca("another test CA");
        self.client_signed_by(cn, &ca, &ca_key, &format!("foreign-{cn}.pem"))
    }

    fn client_signed_by(
        &self,
        cn: &str,
        ca: &rcgen::Certificate,
        ca_key: &rcgen::KeyPair,
        file: &str,
    ) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = Self::name(cn);
        let serial = {
            let mut serials = self.serials.lock().unwrap();
            let serial = 1000 + serials.len() as u64;
            serials.insert(cn.to_owned(), serial);
            serial
        };
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, ca, ca_key).unwrap();
        self.dir
            .write(file, &format!("{}{}", cert.pem(), key.serialize_pem()))
    }

    /// A revocation list from the CA revoking the client certificates of `revoked` (CNs it
    /// signed), current until `next_update_year`: the path of `file`, PEM.
    pub fn crl(&self, file: &str, revoked: &[&str], next_update_year: i32) -> String {
        let serials = self.serials.lock().unwrap();
        let revoked_certs = revoked
            .iter()
            .map(|cn| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(serials[*cn]),
                revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect();
        let crl = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(next_update_year, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&self.ca, &self.ca_key)
        .unwrap();
        self.dir.write(file, &crl.pem().unwrap())
    }

    /// Writes an engine config (`--config`) serving TLS with the server's certificate,
    /// client certificates as `client_certs` says, then the TOML lines `extra`; answers its
    /// path. [`serve`] with it answers an `https://` URL.
    pub fn server_config(&self, client_certs: ClientCerts, extra: &str) -> String {
        // TOML basic strings escape like Rust's `{:?}` for these ASCII temp paths.
        let mut toml = format!(
            "tls_cert_file = {:?}\ntls_key_file = {:?}\n",
            self.dir.path("server.pem"),
            self.dir.path("server.key"),
        );
        if client_certs != ClientCerts::NotAsked {
            toml += &format!("tls_client_ca_file = {:?}\n", self.ca());
        }
        if client_certs == ClientCerts::Required {
            toml += "tls_require_client_cert = true\n";
        }
        toml += extra;
        let n = self.configs.fetch_add(1, Ordering::Relaxed);
        self.dir.write(&format!("hub-{n}.toml"), &toml)
    }
}
