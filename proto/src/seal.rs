//! Secrets that travel in the event log sealed: an alert's webhook URL
//! (Slack's and Discord's are credentials). ChaCha20-Poly1305 (ring) with
//! a random nonce and the alert's id as associated data, under a 32-byte
//! key kept in a file of the data directory (`alerts.key`, 64 hex digits,
//! mode 0600), created on first use. Every process that sends alerts or
//! adds rules needs the same file (docs/alerts.md, "Secrets").

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use std::path::Path;

const PREFIX: &str = "sealed1:";

pub struct SealKey(LessSafeKey);

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot open a sealed secret: it was sealed with another alerts key (copy the data directory's alerts.key, or pass --alerts-key-file)"
)]
pub struct OpenError;

impl SealKey {
    fn from_bytes(bytes: &[u8; 32]) -> SealKey {
        let key = UnboundKey::new(&CHACHA20_POLY1305, bytes).expect("32 bytes is the key length");
        SealKey(LessSafeKey::new(key))
    }

    /// Reads the key file.
    pub fn load(path: &Path) -> anyhow::Result<SealKey> {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "reading the alerts key {} (serve makes it on its first start; \
                 or pass --alerts-key-file)",
                path.display()
            )
        })?;
        let bytes: [u8; 32] = hex::decode(String::from_utf8_lossy(&bytes).trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("{} must hold 64 hex digits", path.display()))?;
        Ok(SealKey::from_bytes(&bytes))
    }

    /// Reads the key file, or creates it (random) when there is none. The
    /// file appears whole (written aside, then linked into place), so a
    /// process starting at the same moment reads it or makes it, never
    /// half of it.
    pub fn load_or_create(path: &Path) -> anyhow::Result<SealKey> {
        if path.exists() {
            return SealKey::load(path);
        }
        let bytes: [u8; 32] = rand::random();
        let aside = path.with_extension(format!("new.{}", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        {
            use std::io::Write;
            let mut f = options
                .open(&aside)
                .with_context(|| format!("creating the alerts key {}", aside.display()))?;
            f.write_all(hex::encode(bytes).as_bytes())?;
            f.sync_all()?;
        }
        let linked = std::fs::hard_link(&aside, path);
        let _ = std::fs::remove_file(&aside);
        match linked {
            Ok(()) => Ok(SealKey::from_bytes(&bytes)),
            // Another process made it first: theirs counts.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => SealKey::load(path),
            Err(e) => Err(e).with_context(|| format!("creating the alerts key {}", path.display())),
        }
    }

    /// `plain` sealed for `context` (an alert's id): opens only with this
    /// key and that context.
    pub fn seal(&self, context: &str, plain: &str) -> String {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let mut data = plain.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .expect("sealing a short text cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&data);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<String, OpenError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|r| r.len() > NONCE_LEN)
            .ok_or(OpenError)?;
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError)?;
        let mut body = body.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| OpenError)?;
        String::from_utf8(plain.to_vec()).map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_context_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.key");
        let key = SealKey::load_or_create(&path).unwrap();
        let url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET";
        let sealed = key.seal("al1", url);
        assert!(!sealed.contains("hooks.slack.com") && !sealed.contains("SECRET"));
        assert_ne!(sealed, key.seal("al1", url), "a fresh nonce each time");
        assert_eq!(key.open("al1", &sealed).unwrap(), url);
        // The same file gives the same key; another context or key fails.
        let again = SealKey::load_or_create(&path).unwrap();
        assert_eq!(again.open("al1", &sealed).unwrap(), url);
        assert!(key.open("al2", &sealed).is_err());
        let other = SealKey::load_or_create(&dir.path().join("other.key")).unwrap();
        assert!(SealKey::load(&dir.path().join("missing.key")).is_err());
        assert!(other.open("al1", &sealed).is_err());
        assert!(key.open("al1", "sealed1:AAAA").is_err());
        assert!(key.open("al1", "garbage").is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
