//! TLS to PostgreSQL for the import: a `tokio_postgres` connector over
//! rustls (ring), and the libpq-style URL options it reads.
//!
//! - `sslmode`: `disable` (the default here: no TLS, as before), `prefer`
//!   (TLS when the server offers it), `require`, `verify-ca` and
//!   `verify-full`. Unlike libpq, every mode that uses TLS verifies the
//!   server's certificate and name: an import carries every key's secret.
//! - `sslrootcert=FILE`: the PEM certificates to trust (a managed
//!   database's CA bundle); without it, the system's roots.

use rustls::pki_types::pem::PemObject;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// What the URL says of TLS, and the URL left for tokio-postgres.
#[derive(Debug, PartialEq, Eq)]
pub struct TlsOptions {
    /// The URL with `sslrootcert` taken out and `sslmode` in a form
    /// tokio-postgres reads (`disable`, `prefer`, `require`).
    pub url: String,
    pub tls: bool,
    pub root_cert: Option<PathBuf>,
}

/// Reads `sslmode` and `sslrootcert` from a `postgres://` URL's query.
pub fn options(url: &str) -> anyhow::Result<TlsOptions> {
    // The query starts after the credentials (a password may hold `?`).
    let after_at = url.rfind('@').map_or(0, |i| i + 1);
    let (base, query) = match url[after_at..].find('?') {
        Some(i) => (&url[..after_at + i], &url[after_at + i + 1..]),
        None => (url, ""),
    };
    let mut kept = Vec::new();
    let mut mode = None;
    let mut root_cert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" if mode.is_some() => anyhow::bail!("sslmode is given twice: give it once"),
            "sslmode" => mode = Some(value.to_owned()),
            "sslrootcert" => {
                let path = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
                if path.is_empty() {
                    anyhow::bail!("sslrootcert is empty: give the path of a PEM file");
                }
                root_cert = Some(PathBuf::from(path.as_ref()));
            }
            _ => kept.push(pair),
        }
    }
    let mapped = match mode.as_deref() {
        None | Some("disable") => "disable",
        Some("prefer" | "allow") => "prefer",
        Some("require" | "verify-ca" | "verify-full") => "require",
        Some(other) => anyhow::bail!(
            "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
        ),
    };
    if root_cert.is_some() && mapped == "disable" {
        anyhow::bail!("sslrootcert is given but TLS is not: add sslmode=verify-full");
    }
    kept.push(match mapped {
        "disable" => "sslmode=disable",
        "prefer" => "sslmode=prefer",
        _ => "sslmode=require",
    });
    let url = format!("{base}?{}", kept.join("&"));
    // Fail closed: what tokio-postgres reads must be the mode decided here.
    let wanted = match mapped {
        "disable" => tokio_postgres::config::SslMode::Disable,
        "prefer" => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    };
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) if config.get_ssl_mode() == wanted => {}
        Ok(_) => anyhow::bail!(
            "the URL's sslmode is ambiguous (given twice, or a password with ? or @ not \
             percent-encoded): write it once, and percent-encode the password"
        ),
        Err(e) => anyhow::bail!("the URL cannot be read: {e}"),
    }
    Ok(TlsOptions {
        url,
        tls: mapped != "disable",
        root_cert,
    })
}

/// A connector that verifies the server against `root_cert`'s
/// certificates, or the system's.
#[derive(Clone)]
pub struct Rustls(Arc<rustls::ClientConfig>);

impl Rustls {
    pub fn new(root_cert: Option<&std::path::Path>) -> anyhow::Result<Rustls> {
        let mut roots = rustls::RootCertStore::empty();
        match root_cert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("reading sslrootcert {}: {e}", path.display()))?;
                let mut found = 0;
                for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| {
                        anyhow::anyhow!("sslrootcert {} is not PEM: {e}", path.display())
                    })?;
                    roots.add(cert).map_err(|e| {
                        anyhow::anyhow!(
                            "sslrootcert {}: a certificate is unusable: {e}",
                            path.display()
                        )
                    })?;
                    found += 1;
                }
                if found == 0 {
                    anyhow::bail!(
                        "sslrootcert {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                        path.display()
                    );
                }
            }
            None => {
                // Unreadable system certificates are skipped, as by other clients.
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow::anyhow!("setting up TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Rustls(Arc::new(config)))
    }
}

impl<S> MakeTlsConnect<S> for Rustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connect, Self::Error> {
        let name = rustls::pki_types::ServerName::try_from(domain.to_owned())?;
        Ok(Connect {
            config: self.0.clone(),
            name,
        })
    }
}

pub struct Connect {
    config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let connector = tokio_rustls::TlsConnector::from(self.config);
            Ok(Stream(connector.connect(self.name, stream).await?))
        })
    }
}

/// The TLS stream, with no channel binding (SCRAM's `prefer` goes on
/// without it).
pub struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_read_and_the_rest_kept() {
        let plain = options("postgres://u:p%40ss@db:5432/dml").unwrap();
        assert_eq!(plain.url, "postgres://u:p%40ss@db:5432/dml?sslmode=disable");
        assert!(!plain.tls && plain.root_cert.is_none());
        let full = options(
            "postgres://u@db/dml?connect_timeout=5&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20b.pem",
        )
        .unwrap();
        assert_eq!(
            full.url,
            "postgres://u@db/dml?connect_timeout=5&sslmode=require"
        );
        assert!(full.tls);
        assert_eq!(full.root_cert, Some(PathBuf::from("/etc/ca b.pem")));
        assert!(options("postgres://db/x?sslmode=prefer").unwrap().tls);
        let bad = options("postgres://db/x?sslmode=maybe").unwrap_err();
        assert!(bad.to_string().contains("not one of"), "{bad}");
        assert!(options("postgres://db/x?sslrootcert=/ca.pem").is_err());
        // A `?` in the password is not the query: TLS stays on.
        let pw = options("postgres://u:pa?ss@db/x?sslmode=require").unwrap();
        assert!(pw.tls, "{pw:?}");
        assert_eq!(pw.url, "postgres://u:pa?ss@db/x?sslmode=require");
        // Given twice: refused rather than guessed.
        assert!(options("postgres://db/x?sslmode=require&sslmode=disable").is_err());
        assert!(options("postgres://db/x?sslmode=require&sslrootcert=").is_err());
    }
}
