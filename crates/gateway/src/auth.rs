//! Who is calling: an org's API key (`Bearer sk_live_...`) or the admin token.
//!
//! An API key is `sk_live_` + 16 hex digits of the key's id + a 32-character random secret.
//! The id routes the check to the partition that holds the key (ids name their partition);
//! only the SHA-256 of the secret is stored or sent anywhere.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::ids::OrgId;
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::App;
use crate::error::ApiError;

pub const KEY_PREFIX: &str = "sk_live_";
const ID_HEX_DIGITS: usize = 16;
const SECRET_CHARS: usize = 32;

/// A freshly made secret and its hash; the key's id is allocated when it is stored.
pub struct NewSecret {
    pub secret: String,
    pub hash: Vec<u8>,
}

impl NewSecret {
    pub fn generate() -> Self {
        let secret = Alphanumeric.sample_string(&mut rand::rng(), SECRET_CHARS);
        let hash = hash_secret(&secret);
        Self { secret, hash }
    }

    pub fn into_key(self, id: u64) -> String {
        format!("{}{}", key_prefix(id), self.secret)
    }
}

/// The part of a key that identifies it without revealing it, shown in key lists.
pub fn key_prefix(id: u64) -> String {
    format!("{KEY_PREFIX}{id:0width$x}", width = ID_HEX_DIGITS)
}

fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Splits a raw key into its id and the hash of its secret; `None` if it is not a key's shape.
fn parse_key(raw: &str) -> Option<(u64, Vec<u8>)> {
    let rest = raw.strip_prefix(KEY_PREFIX)?;
    if rest.len() != ID_HEX_DIGITS + SECRET_CHARS || !rest.is_ascii() {
        return None;
    }
    let (id_hex, secret) = rest.split_at(ID_HEX_DIGITS);
    let id = u64::from_str_radix(id_hex, 16).ok()?;
    secret.bytes().all(|b| b.is_ascii_alphanumeric()).then(|| (id, hash_secret(secret)))
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthenticated("not_authenticated", "Authentication credentials were not provided.")
    })?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthenticated("authentication_failed", "Invalid Authorization header."))?;
    let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("token") {
        return Err(ApiError::unauthenticated(
            "authentication_failed",
            "Dashboard tokens are not accepted by this API; use an API key (sk_live_...).",
        ));
    }
    if !scheme.eq_ignore_ascii_case("bearer") || credentials.trim().is_empty() {
        return Err(ApiError::unauthenticated(
            "authentication_failed",
            "Invalid Authorization header. Use: Authorization: Bearer sk_live_...",
        ));
    }
    Ok(credentials.trim())
}

/// The org an API key belongs to, checked with the partition that holds the key on every
/// request, so a revoked key is refused at once by every gateway.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub org: OrgId,
    /// The API key the request was made with: what stands for "who" where the contract names
    /// a user (`requested_by_id`), since keys are not users.
    pub key_id: u64,
}

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(*caller);
        }
        let key = bearer(parts)?;
        if key.starts_with("pk_live_") {
            return Err(ApiError::unauthenticated(
                "authentication_failed",
                "Publishable keys (pk_live_...) are not accepted by this API; use a secret API key (sk_live_...).",
            ));
        }
        let (key_id, hash) =
            parse_key(key).ok_or_else(|| ApiError::unauthenticated("authentication_failed", "Invalid API key."))?;
        let (org, rate) = app.services.authenticate(key_id, hash).await?;
        if let Some(rate) = rate {
            let exceeded = rate.exceeded;
            let reset_at_ms = rate.reset_at_ms;
            crate::context::record_rate_limit(rate);
            if exceeded {
                return Err(ApiError::rate_limited(reset_at_ms));
            }
        }
        Ok(Self { org, key_id })
    }
}

/// Authenticates every `/v1/` request that presents credentials before it is routed, so each
/// request made with a key counts against the key's rate limit and answers with its headers,
/// whatever it asks for (an unknown path, a wrong method). As in DRF, credentials that are
/// presented must be valid, even where none are needed. Handlers then find the caller here.
pub async fn middleware(State(app): State<App>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/v1/") || !request.headers().contains_key(AUTHORIZATION) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    match Caller::from_request_parts(&mut parts, &app).await {
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(rejection) => rejection.into_response(),
    }
}

/// The admin, standing in for the dashboard.
pub struct Admin;

impl FromRequestParts<App> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if bool::from(token.as_bytes().ct_eq(app.admin_token.as_bytes())) {
            Ok(Admin)
        } else {
            Err(ApiError::unauthenticated("authentication_failed", "Invalid admin token."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_back_to_its_id_and_hash() {
        let secret = NewSecret::generate();
        let hash = secret.hash.clone();
        let key = secret.into_key(4242);
        assert!(key.starts_with("sk_live_0000000000001092"));
        assert_eq!(parse_key(&key), Some((4242, hash)));
        assert_eq!(parse_key("sk_live_short"), None);
        assert_eq!(parse_key(&key.replace("sk_live_", "pk_live_")), None);
    }
}
