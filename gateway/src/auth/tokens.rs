//! Bearer tokens: HS256 JWTs with the algorithm pinned and `exp`, `iss`, `aud` and `sub`
//! required (brief, decision 7). `alg: none` and other algorithms are refused by the pin.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_seconds: u64,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

/// A token that was issued.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: u64,
}

impl TokenKeys {
    pub fn new(secret: &[u8], issuer: &str, audience: &str, ttl_seconds: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.into(),
            audience: audience.into(),
            ttl_seconds,
        }
    }

    pub fn issue(&self, user_id: &str, now_seconds: u64) -> IssuedToken {
        let expires_at = now_seconds + self.ttl_seconds;
        let claims = Claims {
            sub: user_id.into(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: expires_at,
            iat: now_seconds,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail");
        IssuedToken { token, expires_at }
    }

    /// True when `token` is one of this server's tokens, valid or not (expired, re-signed,
    /// tampered): a JWT whose claims name this server as issuer. Such a value never reaches a
    /// function (`api::invoke`), since a valid one acts in its holder's name.
    pub fn names_this_server(&self, token: &str) -> bool {
        jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(token)
            .is_ok_and(|data| data.claims.get("iss").and_then(serde_json::Value::as_str) == Some(self.issuer.as_str()))
    }

    /// The user id a valid token names, or why it is not valid.
    pub fn verify(&self, token: &str) -> Result<String, TokenError> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims.sub),
            Err(error) => Err(match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    Invalid,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32], "containerpub", "containerpub-api", 3600)
    }

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn issued_tokens_verify_and_expire() {
        let keys = keys();
        let issued = keys.issue("usr_1", now());
        assert_eq!(keys.verify(&issued.token), Ok("usr_1".into()));
        let old = keys.issue("usr_1", now() - 7200);
        assert_eq!(keys.verify(&old.token), Err(TokenError::Expired));
    }

    #[test]
    fn this_servers_tokens_are_recognised_valid_or_not() {
        let keys = keys();
        assert!(keys.names_this_server(&keys.issue("usr_1", now()).token));
        assert!(keys.names_this_server(&keys.issue("usr_1", now() - 7200).token), "expired");
        let other = TokenKeys::new(&[9u8; 32], "containerpub", "containerpub-api", 3600);
        assert!(keys.names_this_server(&other.issue("usr_1", now()).token), "signed with another secret");
        let foreign = TokenKeys::new(&[7u8; 32], "auth.example.com", "app", 3600);
        assert!(!keys.names_this_server(&foreign.issue("usr_1", now()).token), "another issuer's token");
        assert!(!keys.names_this_server("not-a-jwt"));
    }

    #[test]
    fn unsigned_and_foreign_tokens_are_refused() {
        let keys = keys();
        let issued = keys.issue("usr_1", now());
        let payload = issued.token.split('.').nth(1).unwrap();
        // {"alg":"none","typ":"JWT"}
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert_eq!(keys.verify(&unsigned), Err(TokenError::Invalid));
        let other = TokenKeys::new(&[8u8; 32], "containerpub", "containerpub-api", 3600).issue("usr_1", now());
        assert_eq!(keys.verify(&other.token), Err(TokenError::Invalid));
        let wrong_audience = TokenKeys::new(&[7u8; 32], "containerpub", "elsewhere", 3600).issue("usr_1", now());
        assert_eq!(keys.verify(&wrong_audience.token), Err(TokenError::Invalid));
    }
}
