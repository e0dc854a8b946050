//! Key secrets and what is derived from them, browser tokens, passwords.
//!
//! No secret enters the event log: a key is stored as its verifier
//! (SHA-256 of the secret) and its browser-signing key
//! (SHA-256 of `minilog-browser-v1:` + secret), which can mint browser
//! tokens and nothing else (docs/api.md, "Browser tokens").

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
const SECRET_LEN: usize = 32;

/// A key's secret. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySecret(String);

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySecret(…)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a key secret is 16 to 128 characters of A-Z, a-z, 0-9, '-' and '_' \
     (minilog makes 32 of A-Z, 0-9, '-' and '_')"
)]
pub struct SecretError;

impl KeySecret {
    /// 32 random characters of `A-Z0-9-_`, like the original.
    pub fn generate() -> KeySecret {
        let mut rng = rand::rng();
        let s = (0..SECRET_LEN)
            .map(|_| char::from(SECRET_ALPHABET[rng.random_range(0..SECRET_ALPHABET.len())]))
            .collect();
        KeySecret(s)
    }

    /// Accepts an existing secret (`minilog key create --secret`), so the
    /// clients of an old installation keep working.
    pub fn parse(text: &str) -> Result<KeySecret, SecretError> {
        let ok = (16..=128).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(KeySecret(text.to_owned()))
        } else {
            Err(SecretError)
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn verifier(&self) -> Verifier {
        verifier_of(self.0.as_bytes())
    }

    pub fn browser_key(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"minilog-browser-v1:");
        h.update(self.0.as_bytes());
        h.finalize().into()
    }

    /// The last four characters, shown on the keys page.
    pub fn ending(&self) -> String {
        let n = self.0.len();
        self.0[n.saturating_sub(4)..].to_owned()
    }
}

/// A key's DSN key: what the Sentry SDKs present (docs/api.md, "Sentry SDK
/// protocol"). 32 lowercase hex characters, since the JavaScript SDKs read
/// a DSN's key with `\w+` and a secret may hold `-`. Stored only as its
/// SHA-256, like a secret. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct DsnKey(String);

impl fmt::Debug for DsnKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DsnKey(…)")
    }
}

impl DsnKey {
    pub fn generate() -> DsnKey {
        DsnKey(hex::encode(rand::random::<[u8; 16]>()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn verifier(&self) -> Verifier {
        verifier_of(self.0.as_bytes())
    }
}

/// The DSN the Sentry SDKs are given: `public_url` (where programs reach
/// minilog, e.g. `https://logs.example.com`) with `user` (a DSN key, or
/// for browsers the key id) and the project number `1`, which the SDKs
/// require and minilog ignores. `None` if `public_url` is not an
/// `http(s)://host[:port][/path]` URL.
pub fn dsn(public_url: &str, user: &str) -> Option<String> {
    let url = public_url.trim().trim_end_matches('/');
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains('@') {
        return None;
    }
    let (host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if host.is_empty() {
        return None;
    }
    Some(format!("{scheme}://{user}@{host}{path}/1"))
}

/// SHA-256 of a secret: what the event log stores instead of the secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Verifier(pub [u8; 32]);

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({})", hex::encode(self.0))
    }
}

impl Verifier {
    /// Constant-time comparison.
    pub fn matches(&self, other: &Verifier) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// The verifier of whatever a caller presented as a secret. Any bytes are
/// accepted: an unknown secret simply matches no key.
pub fn verifier_of(presented: &[u8]) -> Verifier {
    Verifier(Sha256::digest(presented).into())
}

/// A browser token: `<key_id>.<expiry>.<sig>` (docs/api.md).
pub fn browser_token(key_id: &str, browser_key: &[u8; 32], expiry: i64) -> String {
    let sig = token_signature(key_id, browser_key, expiry);
    format!("{key_id}.{expiry}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn token_signature(key_id: &str, browser_key: &[u8; 32], expiry: i64) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(browser_key)
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(format!("{key_id}|{expiry}").as_bytes());
    mac.finalize().into_bytes().into()
}

/// A token split into its parts, signature not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedToken {
    pub key_id: String,
    pub expiry: i64,
    sig: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("a browser token has the form <key_id>.<expiry>.<signature>")]
    Malformed,
    #[error("the browser token's signature does not match")]
    BadSignature,
}

impl ParsedToken {
    pub fn parse(token: &str) -> Result<ParsedToken, TokenError> {
        let mut parts = token.trim().splitn(3, '.');
        let (Some(key_id), Some(expiry), Some(sig)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let expiry = expiry.parse::<i64>().map_err(|_| TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        if key_id.is_empty() || sig.len() != 32 {
            return Err(TokenError::Malformed);
        }
        Ok(ParsedToken {
            key_id: key_id.to_owned(),
            expiry,
            sig,
        })
    }

    /// Checks the signature in constant time.
    pub fn verify(&self, browser_key: &[u8; 32]) -> Result<(), TokenError> {
        let want = token_signature(&self.key_id, browser_key, self.expiry);
        if bool::from(want.as_slice().ct_eq(&self.sig)) {
            Ok(())
        } else {
            Err(TokenError::BadSignature)
        }
    }
}

/// Argon2id with parameters chosen for a log dashboard: 19 MiB, 2 passes,
/// 1 lane (OWASP's minimum), about 30 ms per check in a release build.
fn argon2() -> argon2::Argon2<'static> {
    let params = argon2::Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// A PHC string (`$argon2id$…`) for a password.
pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with valid parameters cannot fail")
        .to_string()
}

/// Whether `password` matches a PHC string; a damaged hash matches nothing.
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(phc) {
        Ok(hash) => argon2().verify_password(password.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// Verifies passwords in memory it allocated once (argon2's 19 MiB), so a
/// thread that checks many passwords holds that much and no more: the
/// allocator never sees a fresh 19 MiB request (glibc keeps such freed
/// blocks per thread, which made memory grow with every thread that ever
/// hashed).
#[derive(Default)]
pub struct PasswordVerifier {
    blocks: Vec<argon2::Block>,
}

impl PasswordVerifier {
    /// Whether `password` matches a PHC string; a damaged hash matches
    /// nothing.
    pub fn verify(&mut self, password: &str, phc: &str) -> bool {
        self.try_verify(password, phc).unwrap_or(false)
    }

    fn try_verify(&mut self, password: &str, phc: &str) -> Option<bool> {
        use argon2::password_hash::PasswordHash;
        let hash = PasswordHash::new(phc).ok()?;
        let algorithm = argon2::Algorithm::try_from(hash.algorithm).ok()?;
        let version = match hash.version {
            Some(v) => argon2::Version::try_from(v).ok()?,
            None => argon2::Version::default(),
        };
        let params = argon2::Params::try_from(&hash).ok()?;
        let expected = hash.hash?;
        let mut salt = [0u8; 64];
        let salt = hash.salt?.decode_b64(&mut salt).ok()?;
        let needed = params.block_count();
        if self.blocks.len() < needed {
            self.blocks.resize(needed, argon2::Block::default());
        }
        let mut out = vec![0u8; expected.len()];
        argon2::Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt,
                &mut out,
                &mut self.blocks[..needed],
            )
            .ok()?;
        Some(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
    }
}

/// A password for generated accounts: 20 characters from a readable alphabet.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_dsn_names_the_key_the_host_and_project_one() {
        assert_eq!(
            dsn("https://logs.example.com/", "abc").as_deref(),
            Some("https://abc@logs.example.com/1")
        );
        assert_eq!(
            dsn("http://127.0.0.1:8000/minilog", "k1").as_deref(),
            Some("http://k1@127.0.0.1:8000/minilog/1")
        );
        for bad in ["logs.example.com", "ftp://x", "https://", "https://a@b"] {
            assert_eq!(dsn(bad, "k"), None, "{bad}");
        }
        let key = DsnKey::generate();
        assert_eq!(key.expose().len(), 32);
        assert!(
            key.expose()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(key, DsnKey::generate());
    }
    use super::*;

    const VECTOR_SECRET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

    #[test]
    fn api_md_test_vector_holds() {
        let secret = KeySecret::parse(VECTOR_SECRET).unwrap();
        assert_eq!(
            hex::encode(secret.verifier().0),
            "5d854a6bcae8dbe496e7040f45d970ce74c9e89200bc2af404159dcf8425ab36"
        );
        let k = secret.browser_key();
        assert_eq!(
            hex::encode(k),
            "73ee9e7923920fee1f42201f346979f55dc191e53beaf7fca7457b2d8a94bc3a"
        );
        let token = browser_token("k7f3a9", &k, 1_800_000_000);
        assert_eq!(
            token,
            "k7f3a9.1800000000.bI2fgUoY1FQ02oZsemytZL-wdSr_W2KndxQKD2Ihylg"
        );
        let parsed = ParsedToken::parse(&token).unwrap();
        assert_eq!(parsed.key_id, "k7f3a9");
        assert_eq!(parsed.expiry, 1_800_000_000);
        assert_eq!(parsed.verify(&k), Ok(()));
    }

    #[test]
    fn a_forged_or_altered_token_is_refused() {
        let k = KeySecret::parse(VECTOR_SECRET).unwrap().browser_key();
        let other = KeySecret::generate().browser_key();
        let token = browser_token("k7f3a9", &other, 1_800_000_000);
        assert_eq!(
            ParsedToken::parse(&token).unwrap().verify(&k),
            Err(TokenError::BadSignature)
        );
        let real = browser_token("k7f3a9", &k, 1_800_000_000);
        let later = real.replace("1800000000", "1900000000");
        assert_eq!(
            ParsedToken::parse(&later).unwrap().verify(&k),
            Err(TokenError::BadSignature)
        );
        assert_eq!(ParsedToken::parse("nope"), Err(TokenError::Malformed));
    }

    #[test]
    fn generated_secrets_have_the_original_shape() {
        for _ in 0..50 {
            let s = KeySecret::generate();
            assert_eq!(s.expose().len(), 32);
            assert!(s.expose().bytes().all(|b| SECRET_ALPHABET.contains(&b)));
            assert_eq!(KeySecret::parse(s.expose()), Ok(s));
        }
        assert!(KeySecret::parse("short").is_err());
        assert!(KeySecret::parse("has spaces in it, sixteen+").is_err());
    }

    #[test]
    fn verifiers_compare_by_content() {
        let s = KeySecret::generate();
        assert!(s.verifier().matches(&verifier_of(s.expose().as_bytes())));
        assert!(!s.verifier().matches(&verifier_of(b"something else")));
    }

    #[test]
    fn passwords_hash_and_verify() {
        let phc = hash_password("correct horse");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("wrong horse", &phc));
        assert!(!verify_password("correct horse", "not a hash"));
        let mut v = PasswordVerifier::default();
        assert!(v.verify("correct horse", &phc));
        assert!(!v.verify("wrong horse", &phc));
        assert!(!v.verify("correct horse", "not a hash"));
        assert!(
            v.verify("correct horse", &phc),
            "the reused memory still works"
        );
    }
}
