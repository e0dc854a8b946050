//! Single sign-on (docs/sso.md): signing in with what the team already has.
//!
//! - **An authenticating proxy** (oauth2-proxy, Authelia, a VPN gateway)
//!   names the person in a header (`--auth-proxy-header Remote-User`).
//!   [`proxy_layer`] believes that header only on a connection from a
//!   `--trusted-proxy` address; from anyone else it is ignored, as if it
//!   were not there. The name is looked up before any handler runs and
//!   handed on as [`ProxyUser`]; pages and the JSON API take it as they
//!   take a session or HTTP Basic.
//! - **OpenID Connect** ([`Oidc`]): the authorization code flow with PKCE,
//!   a nonce and a `state` kept in a signed cookie of ten minutes, the ID
//!   token's signature (the provider's published keys), issuer, audience,
//!   nonce and times checked by the `openidconnect` crate, with
//!   `--oidc-clock-skew` of leeway on the times.
//!
//! Both create someone unknown as a user on first sight (an event, by that
//! user, naming how they came), without a password: the password form
//! treats such a user as unknown. A claim (`--oidc-admin-claim
//! groups=ops`) decides the role of users made this way at each sign-in;
//! users with a password keep the role minilog gave them, so a provider
//! cannot demote or promote the break-glass admins.

use crate::Dashboard;
use crate::session::{self, Session};
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenVerifier, CoreJsonWebKey, CoreTokenResponse,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, JsonWebKey, JwsSigningAlgorithm, LogoutRequest, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout,
    RedirectUrl, Scope, SignatureVerificationError, TokenResponse,
};
use projector::record::UserRecord;
use proto::commands::{self, CommandError, UserChange};
use proto::event::{Actor, Role};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How users made by the proxy header are marked (`UserCreated::signed_in_with`).
pub const VIA_PROXY: &str = "auth proxy";
/// The cookie that carries an OpenID Connect sign-in between the two legs.
pub const STATE_COOKIE: &str = "minilog_oidc";
/// How long a sign-in at the provider may take.
const STATE_TTL_SECS: i64 = 600;
/// How long the provider's discovery document and keys are reused.
const METADATA_TTL: Duration = Duration::from_secs(300);

/// `--auth-proxy-header` and `--auth-proxy-create`.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    pub header: HeaderName,
    /// Create unknown names as members (else refuse them).
    pub create: bool,
}

/// The user an authenticating proxy vouched for on this request.
#[derive(Clone, Debug)]
pub struct ProxyUser(pub UserRecord);

/// Why a single sign-on did not sign someone in.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// The person may not come in this way; says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// Something to retry (the provider or NATS unreachable).
    #[error("{0}")]
    Unavailable(String),
}

impl SsoError {
    fn status(&self) -> StatusCode {
        match self {
            SsoError::Refused(_) => StatusCode::FORBIDDEN,
            SsoError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<crate::error::ApiError> for SsoError {
    fn from(e: crate::error::ApiError) -> SsoError {
        SsoError::Unavailable(e.to_string())
    }
}

impl From<CommandError> for SsoError {
    fn from(e: CommandError) -> SsoError {
        match e {
            CommandError::Invalid(m) => SsoError::Refused(m),
            other => SsoError::Unavailable(other.to_string()),
        }
    }
}

/// Resolves the proxy's header on connections from trusted proxies (see
/// the module's documentation); every other request passes untouched.
pub async fn proxy_layer(State(d): State<Dashboard>, mut req: Request, next: Next) -> Response {
    let Some(proxy) = d.inner.proxy.clone() else {
        return next.run(req).await;
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    let trusted = peer.is_some_and(|ip| {
        d.inner
            .trusted_proxies
            .iter()
            .any(|t| t.to_canonical() == ip)
    });
    let path = req.uri().path();
    let needs_user = !(path == "/healthz" || path == "/readyz" || path.starts_with("/static/"));
    let named: Vec<HeaderValue> = req
        .headers()
        .get_all(&proxy.header)
        .iter()
        .cloned()
        .collect();
    if trusted && needs_user && !named.is_empty() {
        match proxied_user(&d, &proxy, &named).await {
            Ok(user) => {
                req.extensions_mut().insert(ProxyUser(user));
            }
            Err(e) => {
                let status = e.status();
                if req.uri().path().starts_with("/api/") {
                    let body = serde_json::json!({ "error": e.to_string() });
                    return (status, axum::Json(body)).into_response();
                }
                return (status, format!("{e}\n")).into_response();
            }
        }
    }
    next.run(req).await
}

async fn proxied_user(
    d: &Dashboard,
    proxy: &ProxySettings,
    values: &[HeaderValue],
) -> Result<UserRecord, SsoError> {
    // Two copies: the proxy added its own beside one the client sent.
    let [value] = values else {
        return Err(SsoError::Refused(format!(
            "the request carries the {} header {} times: the proxy must replace the client's \
             copy with its own, not add one",
            proxy.header,
            values.len()
        )));
    };
    let name = std::str::from_utf8(value.as_bytes())
        .map(str::trim)
        .unwrap_or("");
    if name.is_empty() {
        return Err(SsoError::Refused(format!(
            "the proxy's {} header is empty or not plain text: it must name the signed-in user",
            proxy.header
        )));
    }
    // The proxy is the authenticator: its names are minilog's, passwords or not.
    d.signed_in_user(SignOn {
        name,
        role: None,
        via: VIA_PROXY,
        subject: None,
        create: proxy.create,
        password_users: true,
    })
    .await
}

/// Who a single sign-on vouched for, and what it may do with the account.
pub struct SignOn<'a> {
    pub name: &'a str,
    /// The role the provider's claim gives, if it decides roles.
    pub role: Option<Role>,
    /// How the user came (`UserCreated::signed_in_with`).
    pub via: &'a str,
    /// The provider's stable id of the user (OIDC `sub`); `None` where the
    /// name is all there is (the proxy header).
    pub subject: Option<&'a str>,
    /// Create unknown names (else refuse them).
    pub create: bool,
    /// Whether accounts with a password may be signed in this way.
    pub password_users: bool,
}

impl Dashboard {
    /// The user a single sign-on vouched for: created on first sight when
    /// `create` (as a member, or `role`), refused when disabled, and when
    /// `!password_users` refused if it has a password (an identity
    /// provider's name must not open a local account, the break-glass
    /// admin's least of all). A user made by a provider that gave a
    /// `subject` signs in only with that provider and that subject: a
    /// provider's user renamed to another's name does not get the other's
    /// account. `role` is applied to users without a password (made by a
    /// sign-on).
    pub async fn signed_in_user(&self, who: SignOn<'_>) -> Result<UserRecord, SsoError> {
        let SignOn {
            name,
            role,
            via,
            subject,
            create,
            password_users,
        } = who;
        let user_id = proto::ids::user_id(name)
            .map_err(|e| SsoError::Refused(format!("{name:?} cannot be a minilog user: {e}")))?;
        let read = |d: &Dashboard| {
            d.inner
                .projection
                .user(&user_id)
                .map_err(|e| SsoError::Unavailable(format!("reading the users: {e}")))
        };
        let user = match read(self)? {
            Some(user) => user,
            None if !create => {
                return Err(SsoError::Refused(format!(
                    "there is no minilog user {name:?}, and this minilog does not create users \
                     on first sight (--auth-proxy-create off): an admin creates it with \
                     `minilog user add` or on the users page"
                )));
            }
            None if self.inner.read_only => {
                return Err(SsoError::Refused(format!(
                    "there is no user {name:?} in this frozen projection, which creates none"
                )));
            }
            None => {
                let role = role.clone().unwrap_or(Role::Member);
                let made =
                    commands::create_signed_in_user(&self.inner.bus, name, role, via, subject);
                match made.await {
                    Ok(seq) => self.wait_for(seq).await?,
                    // Another request (or view) made it meanwhile.
                    Err(CommandError::Exists(_)) => {
                        self.wait_for_stream_end().await?;
                    }
                    Err(e) => return Err(e.into()),
                }
                read(self)?.ok_or_else(|| {
                    SsoError::Unavailable("the new user is not in the projection yet".into())
                })?
            }
        };
        if user.disabled {
            return Err(SsoError::Refused(format!(
                "the minilog user {name:?} is disabled; an admin can enable it"
            )));
        }
        if !password_users && !user.password_hash.is_empty() {
            return Err(SsoError::Refused(format!(
                "{name:?} is a minilog account with a password, which signs in with its \
                 password only: an identity provider's user of the same name cannot take it over"
            )));
        }
        if let Some(subject) = subject
            && user.password_hash.is_empty()
        {
            check_subject(&user, via, subject)?;
        }
        match role {
            Some(role)
                if user.password_hash.is_empty() && user.role != role && !self.inner.read_only =>
            {
                // By minilog, as the provider's claim says (not by the user).
                let change = commands::change_user(
                    &self.inner.bus,
                    &user.user_id,
                    UserChange::Role(role.clone()),
                    Actor::System,
                )
                .await;
                match change {
                    Ok(seq) => self.wait_for(seq).await?,
                    // Another sign-in of the same user changed it meanwhile.
                    Err(CommandError::Raced(_)) => {
                        self.wait_for_stream_end().await?;
                    }
                    Err(e) => return Err(e.into()),
                }
                read(self)?.ok_or_else(|| SsoError::Unavailable("the user went away".into()))
            }
            _ => Ok(user),
        }
    }

    /// Waits until the projection has applied everything stored so far
    /// (another request's change that raced this one's).
    async fn wait_for_stream_end(&self) -> Result<(), SsoError> {
        let last = self
            .inner
            .bus
            .last_seq()
            .await
            .map_err(|e| SsoError::Unavailable(format!("reading the event log: {e}")))?;
        self.wait_for(last).await?;
        Ok(())
    }

    /// A page session for a user the proxy vouched for: nothing is stored
    /// in the browser; the CSRF token is derived from the user and epoch,
    /// so it stays the same on every request while the user does.
    pub fn proxy_session(&self, user: &UserRecord) -> Session {
        Session {
            user_id: user.user_id.clone(),
            epoch: user.epoch,
            expires: proto::clock::now_ms() / 1000 + session::TTL_SECS,
            csrf: self
                .inner
                .session_key
                .derive("proxy-csrf", &format!("{}\0{}", user.user_id, user.epoch)),
        }
    }
}

/// Whether a provider's user (`subject` at `via`) is the one `user` was
/// made for. Only users without a password reach here: made by a sign-on,
/// so their record says how (schema 8 rebuilt older rows from the events);
/// one made before subjects were kept is matched by name and provider.
fn check_subject(user: &UserRecord, via: &str, subject: &str) -> Result<(), SsoError> {
    let Some(made_by) = user.signed_in_with.as_deref() else {
        return Err(SsoError::Refused(format!(
            "the minilog user {:?} has no password and no sign-on of record: an admin \
             can reset its password",
            user.name
        )));
    };
    let how = if made_by != via {
        format!("was made by a sign-in through {made_by} and signs in that way only")
    } else if user
        .subject
        .as_deref()
        .is_some_and(|s| !session::tokens_match(s, subject))
    {
        "belongs to another account at this provider (its subject differs)".to_owned()
    } else {
        return Ok(());
    };
    Err(SsoError::Refused(format!(
        "the minilog user {:?} {how}: a provider's user named the same cannot take it over; \
         give this person another name at the provider",
        user.name
    )))
}

/// The OpenID Connect provider, as `--oidc-*` name it.
#[derive(Clone, Debug)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    /// `None` for a public client (PKCE alone).
    pub client_secret: Option<String>,
    /// Whose claim makes an admin: (claim, value).
    pub admin_claim: Option<(String, String)>,
    /// The claim that names the user (falls back to `email`).
    pub name_claim: String,
    /// What the button says after "Sign in with".
    pub label: String,
    pub clock_skew: Duration,
    /// Asked for besides `openid`.
    pub scopes: Vec<String>,
    /// `--public-url` + `/login/oidc/callback`.
    pub redirect_url: String,
    /// `--oidc-single-logout`: where the provider sends the browser after
    /// it ended its own session too (`--public-url` + `/login`), or `None`
    /// when signing out ends minilog's session only.
    pub post_logout_url: Option<String>,
}

/// Sign-in with an OpenID Connect provider.
pub struct Oidc {
    settings: OidcSettings,
    issuer: IssuerUrl,
    redirect: RedirectUrl,
    http: reqwest::Client,
    metadata: tokio::sync::Mutex<Option<(Instant, ProviderMetadataWithLogout)>>,
}

/// What travels in [`STATE_COOKIE`] from the redirect to the callback.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    /// Unix seconds.
    expires: i64,
}

/// Who the provider says signed in.
#[derive(Debug)]
pub struct Identity {
    pub name: String,
    pub role: Option<Role>,
    /// The provider's stable id of the user (`sub`).
    pub subject: String,
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> anyhow::Result<Oidc> {
        let issuer = IssuerUrl::new(settings.issuer.clone())
            .map_err(|e| anyhow::anyhow!("--oidc-issuer {:?}: {e}", settings.issuer))?;
        let redirect = RedirectUrl::new(settings.redirect_url.clone())
            .map_err(|e| anyhow::anyhow!("the OIDC redirect {:?}: {e}", settings.redirect_url))?;
        let http = reqwest::Client::builder()
            // Following redirects would let the provider's answers send
            // minilog's requests elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()?;
        Ok(Oidc {
            settings,
            issuer,
            redirect,
            http,
            metadata: tokio::sync::Mutex::new(None),
        })
    }

    pub fn label(&self) -> &str {
        &self.settings.label
    }

    /// The provider's discovery document and keys, fetched at most every
    /// [`METADATA_TTL`] (so a rotated key is picked up within minutes).
    async fn metadata(&self, fresh: bool) -> Result<ProviderMetadataWithLogout, SsoError> {
        let mut cached = self.metadata.lock().await;
        if let Some((at, md)) = cached.as_ref()
            && !fresh
            && at.elapsed() < METADATA_TTL
        {
            return Ok(md.clone());
        }
        let md = ProviderMetadataWithLogout::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| {
                SsoError::Unavailable(format!(
                    "could not read the identity provider's discovery document at {}: {e}",
                    self.settings.issuer
                ))
            })?;
        *cached = Some((Instant::now(), md.clone()));
        Ok(md)
    }

    /// With `--oidc-single-logout`, where to send a browser whose user came
    /// in through this provider once minilog's session is gone: the
    /// provider's `end_session_endpoint` (RP-initiated logout), which ends
    /// its session too and sends the browser back to minilog's login page.
    /// `None` when the flag is off, the user came another way, or the
    /// provider has no such endpoint (or cannot be read now: signing out
    /// of minilog must not wait on it).
    pub async fn logout_url(&self, user: &UserRecord) -> Option<String> {
        let back = self.settings.post_logout_url.as_deref()?;
        let via = format!("OIDC {}", self.settings.issuer);
        if user.signed_in_with.as_deref() != Some(via.as_str()) {
            return None;
        }
        let md = match self.metadata(false).await {
            Ok(md) => md,
            Err(e) => {
                tracing::warn!("signing out at the identity provider skipped: {e}");
                return None;
            }
        };
        let end = md.additional_metadata().end_session_endpoint.clone()?;
        // The page links to it: a web address only, never `javascript:`.
        if !matches!(end.url().scheme(), "https" | "http") {
            tracing::warn!("the provider's end_session_endpoint is not a web address; skipped");
            return None;
        }
        let back = PostLogoutRedirectUrl::new(back.to_owned()).ok()?;
        let request = LogoutRequest::from(end)
            .set_client_id(self.client_id())
            .set_post_logout_redirect_uri(back);
        Some(request.http_get_url().to_string())
    }

    fn client_id(&self) -> ClientId {
        ClientId::new(self.settings.client_id.clone())
    }

    fn client_secret(&self) -> Option<ClientSecret> {
        self.settings.client_secret.clone().map(ClientSecret::new)
    }

    /// Where to send the browser, and what to remember until it is back.
    async fn start(&self, next: String) -> Result<(String, Pending), SsoError> {
        let md = self.metadata(false).await?;
        let client = CoreClient::from_provider_metadata(md, self.client_id(), self.client_secret())
            .set_redirect_uri(self.redirect.clone());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in &self.settings.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        let pending = Pending {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            next,
            expires: proto::clock::now_ms() / 1000 + STATE_TTL_SECS,
        };
        Ok((url.to_string(), pending))
    }

    /// Checks the ID token of `tokens` with `client`'s keys: signature,
    /// issuer, audience, nonce, times (with the clock skew), and the access
    /// token's hash when the token carries one. The error says whether a
    /// key was missing (worth reading the provider's keys again).
    fn verify<C>(
        &self,
        client: &C,
        tokens: &CoreTokenResponse,
        nonce: &Nonce,
    ) -> Result<(), (bool, String)>
    where
        C: IdTokenVerifierSource,
    {
        let id_token = tokens
            .id_token()
            .ok_or_else(|| (false, "there is none".to_owned()))?;
        let skew = chrono::Duration::from_std(self.settings.clock_skew)
            .unwrap_or_else(|_| chrono::Duration::seconds(60));
        let verifier = client
            .verifier()
            // `exp` may have passed by up to the skew, and `iat` lie ahead by as much.
            .set_time_fn(move || chrono::Utc::now() - skew)
            .set_issue_time_verifier_fn(move |iat| {
                if iat <= chrono::Utc::now() + skew {
                    Ok(())
                } else {
                    Err(format!("issued in the future ({iat})"))
                }
            });
        let claims = id_token.claims(&verifier, nonce).map_err(|e| {
            let missing_key = matches!(
                e,
                ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey
                )
            );
            (missing_key, e.to_string())
        })?;
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token.signing_alg().map_err(|e| (false, e.to_string()))?;
            let key = match id_token.signing_key(&verifier) {
                Ok(key) => key.clone(),
                // HMAC: the key is the client secret, as the signature's was.
                Err(_) if alg.uses_shared_secret() && self.settings.client_secret.is_some() => {
                    let secret = self.settings.client_secret.clone().unwrap_or_default();
                    CoreJsonWebKey::new_symmetric(secret.into_bytes())
                }
                Err(e) => return Err((false, e.to_string())),
            };
            let actual = AccessTokenHash::from_token(tokens.access_token(), alg, &key)
                .map_err(|e| (false, e.to_string()))?;
            if actual != *expected {
                return Err((
                    false,
                    "the access token does not belong to it (at_hash)".to_owned(),
                ));
            }
        }
        Ok(())
    }

    /// Trades the code for tokens and checks the ID token.
    async fn finish(&self, code: String, pending: Pending) -> Result<Identity, SsoError> {
        let md = self.metadata(false).await?;
        let client = CoreClient::from_provider_metadata(md, self.client_id(), self.client_secret())
            .set_redirect_uri(self.redirect.clone());
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| {
                SsoError::Unavailable(format!("the provider names no token endpoint: {e}"))
            })?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| {
                SsoError::Refused(format!(
                    "the identity provider did not accept the sign-in: {e}"
                ))
            })?;
        let id_token = tokens.id_token().ok_or_else(|| {
            SsoError::Refused(
                "the identity provider sent no ID token (is `openid` allowed?)".into(),
            )
        })?;
        let nonce = Nonce::new(pending.nonce);
        match self.verify(&client, &tokens, &nonce) {
            // A key the cached document does not list yet: the provider may
            // have rotated its keys; read them again once.
            Err((true, _)) => {
                let md = self.metadata(true).await?;
                let fresh =
                    CoreClient::from_provider_metadata(md, self.client_id(), self.client_secret());
                self.verify(&fresh, &tokens, &nonce)
            }
            other => other,
        }
        .map_err(|(_, why)| SsoError::Refused(format!("the ID token was refused: {why}")))?;
        // Verified above; read the claims this module names by their keys.
        let raw = payload(&id_token.to_string()).ok_or_else(|| {
            SsoError::Refused("the ID token's claims are not a JSON object".into())
        })?;
        identity(&raw, &self.settings)
    }
}

/// A client that makes ID token verifiers (whatever its endpoints' states).
trait IdTokenVerifierSource {
    fn verifier(&self) -> CoreIdTokenVerifier<'_>;
}

impl<
    HasAuthUrl,
    HasDeviceAuthUrl,
    HasIntrospectionUrl,
    HasRevocationUrl,
    HasTokenUrl,
    HasUserInfoUrl,
> IdTokenVerifierSource
    for CoreClient<
        HasAuthUrl,
        HasDeviceAuthUrl,
        HasIntrospectionUrl,
        HasRevocationUrl,
        HasTokenUrl,
        HasUserInfoUrl,
    >
where
    HasAuthUrl: openidconnect::EndpointState,
    HasDeviceAuthUrl: openidconnect::EndpointState,
    HasIntrospectionUrl: openidconnect::EndpointState,
    HasRevocationUrl: openidconnect::EndpointState,
    HasTokenUrl: openidconnect::EndpointState,
    HasUserInfoUrl: openidconnect::EndpointState,
{
    fn verifier(&self) -> CoreIdTokenVerifier<'_> {
        self.id_token_verifier()
    }
}

/// The JSON claims of a compact JWS (already verified).
fn payload(jws: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine;
    let body = jws.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The user name and role a verified token's claims give.
fn identity(
    claims: &serde_json::Map<String, serde_json::Value>,
    settings: &OidcSettings,
) -> Result<Identity, SsoError> {
    let text = |key: &str| {
        claims
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    // The address stands in only when the provider vouches for it.
    let verified_email = || {
        (claims.get("email_verified") == Some(&serde_json::Value::Bool(true)))
            .then(|| text("email"))
            .flatten()
    };
    let name = text(&settings.name_claim)
        .or_else(verified_email)
        .ok_or_else(|| {
            SsoError::Refused(format!(
                "the ID token has no {:?} claim (nor a verified email) to name the user by: \
                 ask for a scope that adds it, or choose another with --oidc-name-claim",
                settings.name_claim
            ))
        })?;
    // Compared as sent: a subject is an opaque id, not a name.
    let subject = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| SsoError::Refused("the ID token has no subject (sub claim)".into()))?;
    let role = settings.admin_claim.as_ref().map(|(claim, value)| {
        let matches = match claims.get(claim) {
            Some(serde_json::Value::String(s)) => s == value,
            Some(serde_json::Value::Array(items)) => {
                items.iter().any(|i| i.as_str() == Some(value.as_str()))
            }
            Some(serde_json::Value::Bool(b)) => value == &b.to_string(),
            _ => false,
        };
        if matches { Role::Admin } else { Role::Member }
    });
    Ok(Identity {
        name,
        role,
        subject,
    })
}

pub fn routes() -> axum::Router<Dashboard> {
    axum::Router::new()
        .route("/login/oidc", get(begin))
        .route("/login/oidc/callback", get(callback))
}

/// `GET /login/oidc?next=…`: off to the provider.
async fn begin(
    State(d): State<Dashboard>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, crate::pages::PageError> {
    let Some(oidc) = d.inner.oidc.clone() else {
        return Err(crate::pages::PageError::NotFound(
            "This minilog has no OpenID Connect provider (--oidc-issuer).".into(),
        ));
    };
    let next = crate::pages::local_path(q.get("next").map(String::as_str));
    match oidc.start(next.clone()).await {
        Ok((url, pending)) => {
            let sealed = d.inner.session_key.seal_value("oidc", &pending);
            let mut resp = Redirect::to(&url).into_response();
            let cookie = d.inner.cookies.set(STATE_COOKIE, &sealed, STATE_TTL_SECS);
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            Ok(resp)
        }
        Err(e) => crate::pages::login::login_page(&d, e.status(), &next, "", Some(e.to_string())),
    }
}

/// `GET /login/oidc/callback?code=…&state=…`: back from the provider.
async fn callback(
    State(d): State<Dashboard>,
    headers: axum::http::HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, crate::pages::PageError> {
    let pending: Option<Pending> = d
        .inner
        .cookies
        .get(&headers, STATE_COOKIE)
        .and_then(|v| d.inner.session_key.open_value("oidc", v))
        .filter(|p: &Pending| p.expires > proto::clock::now_ms() / 1000);
    let next = pending
        .as_ref()
        .map_or_else(|| "/log/groups/".to_owned(), |p| p.next.clone());
    let outcome = signed_in(&d, &q, pending).await;
    let mut resp = match outcome {
        Ok(user) => {
            let mut resp = crate::pages::back_to(Some(&next));
            d.start_session(&mut resp, &user);
            resp
        }
        Err(e) => {
            tracing::info!("an OpenID Connect sign-in was refused: {e}");
            crate::pages::login::login_page(&d, e.status(), &next, "", Some(e.to_string()))?
        }
    };
    // One use: the state goes whatever happened.
    if let Ok(v) = HeaderValue::from_str(&d.inner.cookies.set(STATE_COOKIE, "", 0)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

async fn signed_in(
    d: &Dashboard,
    q: &HashMap<String, String>,
    pending: Option<Pending>,
) -> Result<UserRecord, SsoError> {
    let Some(oidc) = d.inner.oidc.clone() else {
        return Err(SsoError::Refused(
            "This minilog has no OpenID Connect provider (--oidc-issuer).".into(),
        ));
    };
    // The state first: only an answer to this browser's own sign-in is
    // read, so another site cannot put its words on this page.
    let Some(pending) = pending else {
        return Err(SsoError::Refused(
            "this sign-in did not start here, or took longer than ten minutes: try again".into(),
        ));
    };
    let state = q.get("state").map_or("", String::as_str);
    if !session::tokens_match(state, &pending.state) {
        return Err(SsoError::Refused(
            "this answer belongs to another sign-in (state does not match): try again".into(),
        ));
    }
    if let Some(error) = q.get("error") {
        let detail = q.get("error_description").map_or("", String::as_str);
        return Err(SsoError::Refused(format!(
            "the identity provider said {error:?} {detail}"
        )));
    }
    let code = q
        .get("code")
        .filter(|c| !c.is_empty())
        .cloned()
        .ok_or_else(|| SsoError::Refused("the identity provider sent no code".into()))?;
    let who = oidc.finish(code, pending).await?;
    let via = format!("OIDC {}", oidc.settings.issuer);
    d.signed_in_user(SignOn {
        name: &who.name,
        role: who.role,
        via: &via,
        subject: Some(&who.subject),
        create: true,
        password_users: false,
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OidcSettings {
        OidcSettings {
            issuer: "https://id.example.com".into(),
            client_id: "minilog".into(),
            client_secret: None,
            admin_claim: Some(("groups".into(), "ops".into())),
            name_claim: "preferred_username".into(),
            label: "Example".into(),
            clock_skew: Duration::from_secs(60),
            scopes: vec![],
            redirect_url: "https://logs.example.com/login/oidc/callback".into(),
            post_logout_url: None,
        }
    }

    fn claims(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_name_claim_names_the_user_and_the_admin_claim_decides_the_role() {
        let s = settings();
        let ops = identity(
            &claims(serde_json::json!({"sub": "1", "preferred_username": "ann", "groups": ["dev", "ops"]})),
            &s,
        )
        .unwrap();
        assert_eq!((ops.name.as_str(), ops.role), ("ann", Some(Role::Admin)));
        let dev = identity(
            &claims(serde_json::json!({"sub": "2", "preferred_username": "bo", "groups": "dev"})),
            &s,
        )
        .unwrap();
        assert_eq!(dev.role, Some(Role::Member));
        let by_mail = identity(
            &claims(
                serde_json::json!({"sub": "3", "email": "cy@example.com", "email_verified": true}),
            ),
            &s,
        )
        .unwrap();
        assert_eq!(
            (by_mail.name.as_str(), by_mail.role),
            ("cy@example.com", Some(Role::Member))
        );
        assert_eq!(ops.subject, "1");
        assert!(identity(&claims(serde_json::json!({"sub": "x"})), &s).is_err());
        // No subject, no sign-in: it is what binds the account.
        assert!(
            identity(
                &claims(serde_json::json!({"preferred_username": "ann"})),
                &s
            )
            .is_err()
        );
        // An address the provider does not vouch for names nobody.
        let unverified =
            serde_json::json!({"sub": "4", "email": "admin@example.com", "email_verified": false});
        assert!(identity(&claims(unverified), &s).is_err());
        assert!(
            identity(
                &claims(serde_json::json!({"sub": "5", "email": "a@example.com"})),
                &s
            )
            .is_err()
        );
        let no_claim = OidcSettings {
            admin_claim: None,
            ..settings()
        };
        let plain = identity(
            &claims(serde_json::json!({"sub": "1", "preferred_username": "ann"})),
            &no_claim,
        )
        .unwrap();
        assert_eq!(plain.role, None);
    }

    #[test]
    fn a_sign_on_user_is_bound_to_its_provider_and_subject() {
        let user = |via: Option<&str>, subject: Option<&str>| UserRecord {
            user_id: "bo".into(),
            name: "bo".into(),
            password_hash: String::new(),
            role: Role::Member,
            created_at: 0,
            disabled: false,
            epoch: 0,
            signed_in_with: via.map(str::to_owned),
            subject: subject.map(str::to_owned),
        };
        let via = "OIDC https://id.example.com";
        assert!(check_subject(&user(Some(via), Some("b-1")), via, "b-1").is_ok());
        // Someone at the provider renamed to "bo".
        let renamed = check_subject(&user(Some(via), Some("b-1")), via, "m-2").unwrap_err();
        assert!(renamed.to_string().contains("subject differs"), "{renamed}");
        // Another provider's (or the proxy's) user of that name.
        let other = check_subject(&user(Some(via), Some("b-1")), "OIDC https://x", "b-1");
        assert!(
            other
                .unwrap_err()
                .to_string()
                .contains("signs in that way only")
        );
        assert!(check_subject(&user(Some(VIA_PROXY), None), via, "b-1").is_err());
        // Made before subjects were kept: the provider alone decides, as then;
        // a passwordless user that no sign-on made is nobody's to take.
        assert!(check_subject(&user(Some(via), None), via, "any").is_ok());
        assert!(check_subject(&user(None, None), via, "any").is_err());
    }

    #[test]
    fn payloads_are_read_from_the_middle_part() {
        use base64::Engine;
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"1"}"#);
        let map = payload(&format!("h.{body}.s")).unwrap();
        assert_eq!(map["sub"], "1");
        assert!(payload("no-dots").is_none());
        let list = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"[1]");
        assert!(payload(&format!("h.{list}.s")).is_none());
    }
}
