//! Tokens: standard JWTs with claims `sub`, `name`, `room` (or `*`), `role`, `tenant`,
//! `exp` (and `iat`). Each tenant has its own key: HS256 (shared secret) or EdDSA
//! (Ed25519 public key; the tenant's backend keeps the secret key).
//!
//! Pure: verification takes `now_ms`; no clock is read. Signature checks are jwt-compact's.

#![forbid(unsafe_code)]

use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use jwt_compact::alg::{Ed25519, Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Claims, Header, UntrustedToken};
use ovation_proto::limits::{
    HS256_SECRET_BYTES_MIN, ROOM_ID_BYTES_MAX, TENANTS_MAX, TENANT_ID_BYTES_MAX, TOKEN_BYTES_MAX,
    TOKEN_IAT_LEEWAY_MS, TOKEN_LIFETIME_MS_MAX, USER_ID_BYTES_MAX, USER_NAME_BYTES_MAX,
    WRONG_TENANT_KEYS_TRIED_MAX,
};
use ovation_proto::Role;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub use jwt_compact::alg::{Ed25519 as Ed25519Alg, Hs256 as Hs256Alg};

/// The custom claims of an Ovation token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    pub sub: String,
    #[serde(default)]
    pub name: String,
    /// A room id, or `*` for every room of the tenant.
    pub room: String,
    pub role: String,
    pub tenant: String,
}

/// A verified token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub user: String,
    pub name: String,
    pub room: String,
    pub role: Role,
    pub tenant: String,
    pub expires_at_ms: u64,
}

impl Verified {
    /// Whether this token may be used for `room_id`.
    pub fn authorize_room(&self, room_id: &str) -> Result<(), AuthError> {
        if self.room == "*" || self.room == room_id {
            Ok(())
        } else {
            Err(AuthError::WrongRoom)
        }
    }

    /// Admin API calls need role `admin`.
    pub fn require_admin(&self) -> Result<(), AuthError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(AuthError::NotAdmin)
        }
    }
}

/// Why a token was refused. Each has a distinct stable code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Malformed(String),
    UnknownTenant,
    /// The signature does not verify with any key we hold.
    InvalidSignature,
    /// Signed with another tenant's key than the tenant it claims.
    WrongTenant,
    Expired,
    LifetimeTooLong,
    WrongRoom,
    NotAdmin,
    /// `iat` lies more than `TOKEN_IAT_LEEWAY_MS` after our clock: minted with a clock
    /// far ahead (or forged to live past the lifetime limit).
    IssuedInFuture,
    /// No `iat` claim: the token's lifetime cannot be checked.
    IssuedAtMissing,
    /// The token's tenant has an entry in the keyring that cannot be used (the
    /// deployment's fault, not the token's: 503, as with no keyring at all).
    TenantKeyUnusable,
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "token_missing",
            AuthError::Malformed(_) => "token_malformed",
            AuthError::UnknownTenant => "token_unknown_tenant",
            AuthError::InvalidSignature => "token_invalid_signature",
            AuthError::WrongTenant => "token_wrong_tenant",
            AuthError::Expired => "token_expired",
            AuthError::LifetimeTooLong => "token_lifetime_too_long",
            AuthError::WrongRoom => "token_wrong_room",
            AuthError::NotAdmin => "token_not_admin",
            AuthError::IssuedInFuture => "token_issued_in_future",
            AuthError::IssuedAtMissing => "token_iat_missing",
            AuthError::TenantKeyUnusable => "auth_not_configured",
        }
    }

    /// HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::WrongRoom | AuthError::NotAdmin => 403,
            AuthError::TenantKeyUnusable => 503,
            _ => 401,
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Missing => f.write_str("no token: send `Authorization: Bearer <token>` (a WebSocket upgrade may pass `?token=` instead)"),
            AuthError::Malformed(why) => write!(f, "token is malformed: {why}"),
            AuthError::UnknownTenant => f.write_str("token names an unknown tenant"),
            AuthError::InvalidSignature => f.write_str("token signature is invalid"),
            AuthError::WrongTenant => f.write_str("token is signed by another tenant"),
            AuthError::Expired => f.write_str("token has expired"),
            AuthError::LifetimeTooLong => f.write_str("token lifetime exceeds 24 h"),
            AuthError::WrongRoom => f.write_str("token is not valid for this room"),
            AuthError::NotAdmin => f.write_str("this call needs a token with role admin"),
            AuthError::IssuedInFuture => write!(
                f,
                "token `iat` is more than {} s in the future: check the minting clock",
                TOKEN_IAT_LEEWAY_MS / 1000
            ),
            AuthError::IssuedAtMissing => f.write_str("token has no `iat` claim"),
            AuthError::TenantKeyUnusable => f.write_str(
                "this tenant's entry in OVATION_TENANT_KEYS cannot be used: its tokens are \
                 refused until it is fixed (the log says why)",
            ),
        }
    }
}

/// A tenant's verification key.
#[derive(Clone)]
pub enum TenantKey {
    Hs256(Hs256Key),
    Ed25519(ed25519_compact::PublicKey),
}

impl TenantKey {
    /// The `alg` of the tokens this key verifies.
    fn algorithm(&self) -> std::borrow::Cow<'static, str> {
        use jwt_compact::Algorithm;
        match self {
            TenantKey::Hs256(_) => Hs256.name(),
            TenantKey::Ed25519(_) => Ed25519.name(),
        }
    }
}

/// A tenant's signing key (held by the tenant's backend; the CLI has the dev one).
#[derive(Clone)]
pub enum SigningKey {
    Hs256(Hs256Key),
    Ed25519(ed25519_compact::SecretKey),
}

impl SigningKey {
    pub fn hs256(secret: &[u8]) -> SigningKey {
        SigningKey::Hs256(Hs256Key::new(secret))
    }
    /// From a 32-byte Ed25519 seed.
    pub fn ed25519_from_seed(seed: [u8; 32]) -> SigningKey {
        let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed));
        SigningKey::Ed25519(pair.sk)
    }
    /// The matching verification key.
    pub fn tenant_key(&self) -> TenantKey {
        match self {
            SigningKey::Hs256(key) => TenantKey::Hs256(key.clone()),
            SigningKey::Ed25519(sk) => TenantKey::Ed25519(sk.public_key()),
        }
    }
}

/// Keys per tenant, and the tenants whose entry could not be used (each with why): one
/// tenant's bad entry refuses that tenant's tokens only.
#[derive(Clone, Default)]
pub struct Keyring {
    tenants: BTreeMap<String, TenantKey>,
    unusable: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyConfig {
    hs256: Option<String>,
    /// Base64 (standard) of the 32-byte Ed25519 public key.
    ed25519_public: Option<String>,
}

/// A tenant id: 1 to `TENANT_ID_BYTES_MAX` ASCII letters, digits, `-`, `_` or `.`. It
/// leads every ledger account (`tenant:user`, `tenant:room:epoch`) and object name
/// (`tenant/room`), so it holds neither separator: with a `:` one tenant could name
/// another's accounts (`acme` minting `sub: "eu:alice"` is `acme:eu`'s `alice`).
pub fn check_tenant_id(tenant: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if tenant.is_empty() || tenant.len() > TENANT_ID_BYTES_MAX || !tenant.chars().all(allowed) {
        return Err(format!(
            "tenant `{tenant}`: a tenant id is 1..={TENANT_ID_BYTES_MAX} ASCII letters, \
             digits, `-`, `_` or `.`"
        ));
    }
    Ok(())
}

impl Keyring {
    /// Parses `{"tenant": {"hs256": "secret"} | {"ed25519_public": "base64"}, …}`. `Err`
    /// only when nothing can be read (not JSON, not an object, more than `TENANTS_MAX`
    /// tenants); an entry that cannot be used is kept aside with why (`unusable`), and
    /// its tenant's tokens are refused `auth_not_configured` while the others work.
    pub fn from_json(json: &str) -> Result<Keyring, String> {
        let config: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(json).map_err(|e| format!("tenant keys: {e}"))?;
        if config.len() > TENANTS_MAX {
            return Err(format!("at most {TENANTS_MAX} tenants"));
        }
        let mut keyring = Keyring::default();
        for (tenant, entry) in config {
            match Keyring::tenant_key(&tenant, entry) {
                Ok(key) => keyring.insert(tenant, key),
                Err(why) => {
                    keyring.unusable.insert(tenant, why);
                }
            }
        }
        Ok(keyring)
    }

    /// One tenant's key from its entry, or why it cannot be used.
    fn tenant_key(tenant: &str, entry: serde_json::Value) -> Result<TenantKey, String> {
        check_tenant_id(tenant)?;
        let key: KeyConfig =
            serde_json::from_value(entry).map_err(|e| format!("tenant `{tenant}`: {e}"))?;
        match (key.hs256, key.ed25519_public) {
            (Some(secret), None) => {
                if secret.len() < HS256_SECRET_BYTES_MIN {
                    return Err(format!(
                        "tenant `{tenant}`: hs256 secret shorter than {HS256_SECRET_BYTES_MIN} bytes"
                    ));
                }
                Ok(TenantKey::Hs256(Hs256Key::new(secret.as_bytes())))
            }
            (None, Some(public)) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(public)
                    .map_err(|e| format!("tenant `{tenant}`: ed25519_public: {e}"))?;
                let key = ed25519_compact::PublicKey::from_slice(&bytes)
                    .map_err(|e| format!("tenant `{tenant}`: ed25519_public: {e}"))?;
                Ok(TenantKey::Ed25519(key))
            }
            _ => Err(format!(
                "tenant `{tenant}`: give exactly one of hs256, ed25519_public"
            )),
        }
    }

    /// The entries that could not be used, each with why (for the host's log).
    pub fn unusable(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.unusable
            .iter()
            .map(|(t, why)| (t.as_str(), why.as_str()))
    }

    pub fn insert(&mut self, tenant: String, key: TenantKey) {
        self.tenants.insert(tenant, key);
        assert!(self.tenants.len() <= TENANTS_MAX);
    }

    fn verifies(key: &TenantKey, token: &UntrustedToken<'_>) -> bool {
        // A cheap early way out (the validator refuses another `alg` too).
        if token.algorithm() != key.algorithm() {
            return false;
        }
        match key {
            TenantKey::Hs256(k) => Hs256.validator::<TokenClaims>(k).validate(token).is_ok(),
            TenantKey::Ed25519(k) => Ed25519.validator::<TokenClaims>(k).validate(token).is_ok(),
        }
    }

    /// Verifies signature, tenant, expiry and lifetime at `now_ms`.
    pub fn verify(&self, token: &str, now_ms: u64) -> Result<Verified, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > TOKEN_BYTES_MAX {
            return Err(AuthError::Malformed("too long".into()));
        }
        let untrusted =
            UntrustedToken::new(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let claims: Claims<TokenClaims> = untrusted
            .deserialize_claims_unchecked()
            .map_err(|e| AuthError::Malformed(e.to_string()))?;
        let custom = &claims.custom;
        if self.unusable.contains_key(&custom.tenant) {
            return Err(AuthError::TenantKeyUnusable);
        }
        let key = self
            .tenants
            .get(&custom.tenant)
            .ok_or(AuthError::UnknownTenant)?;
        if !Keyring::verifies(key, &untrusted) {
            // Which tenant signed it, for the code: a few keys of its algorithm only
            // (`WRONG_TENANT_KEYS_TRIED_MAX`), so a forged token costs a few checks.
            let algorithm = untrusted.algorithm();
            let other = self
                .tenants
                .iter()
                .filter(|(t, k)| **t != custom.tenant && k.algorithm() == algorithm)
                .take(WRONG_TENANT_KEYS_TRIED_MAX)
                .any(|(_, k)| Keyring::verifies(k, &untrusted));
            return Err(if other {
                AuthError::WrongTenant
            } else {
                AuthError::InvalidSignature
            });
        }
        let expires_at_ms = claims
            .expiration
            .map(|t| u64::try_from(t.timestamp_millis()).unwrap_or(0))
            .ok_or_else(|| AuthError::Malformed("no exp claim".into()))?;
        if expires_at_ms <= now_ms {
            return Err(AuthError::Expired);
        }
        let issued_at_ms = claims
            .issued_at
            .map(|t| u64::try_from(t.timestamp_millis()).unwrap_or(0))
            .ok_or(AuthError::IssuedAtMissing)?;
        if issued_at_ms > now_ms.saturating_add(TOKEN_IAT_LEEWAY_MS) {
            return Err(AuthError::IssuedInFuture);
        }
        // The lifetime as the contract states it, `exp - iat`: a full-lifetime token from
        // a minting clock a little ahead of ours is still taken (measured from our clock it
        // was longer, and refused right after minting). `iat` is at most the leeway ahead,
        // so a token lives at most `TOKEN_LIFETIME_MS_MAX + TOKEN_IAT_LEEWAY_MS` from now.
        if expires_at_ms.saturating_sub(issued_at_ms) > TOKEN_LIFETIME_MS_MAX {
            return Err(AuthError::LifetimeTooLong);
        }
        let role = Role::parse(&custom.role)
            .ok_or_else(|| AuthError::Malformed(format!("unknown role `{}`", custom.role)))?;
        for (field, value, max) in [
            ("sub", &custom.sub, USER_ID_BYTES_MAX),
            ("name", &custom.name, USER_NAME_BYTES_MAX),
            ("room", &custom.room, ROOM_ID_BYTES_MAX),
            ("tenant", &custom.tenant, TENANT_ID_BYTES_MAX),
        ] {
            if value.len() > max {
                return Err(AuthError::Malformed(format!(
                    "`{field}` longer than {max} bytes"
                )));
            }
        }
        if custom.sub.is_empty() {
            return Err(AuthError::Malformed("empty sub".into()));
        }
        // The ledger refuses them in an account's name: such a user's every gift was
        // refused `invalid`, as if the gift were at fault.
        if custom.sub.chars().any(char::is_control) {
            return Err(AuthError::Malformed("`sub` has control characters".into()));
        }
        if custom.sub == ovation_proto::SYSTEM_SENDER {
            return Err(AuthError::Malformed(format!(
                "`sub` `{}` is the system's (its messages would be forged)",
                ovation_proto::SYSTEM_SENDER
            )));
        }
        Ok(Verified {
            user: custom.sub.clone(),
            // A token without a name shows its `sub`, which may be twice a name's
            // bound: cut there, on a character (a name is at most USER_NAME_BYTES_MAX
            // wherever it shows: comments, gifts, rankings).
            name: if custom.name.is_empty() {
                ovation_proto::cut_at_char(&custom.sub, USER_NAME_BYTES_MAX).to_owned()
            } else {
                custom.name.clone()
            },
            room: custom.room.clone(),
            role,
            tenant: custom.tenant.clone(),
            expires_at_ms,
        })
    }
}

fn millis(ms: u64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(i64::try_from(ms).expect("ms fits i64"))
        .single()
        .expect("valid timestamp")
}

/// Mints a token (for the CLI, tests and dev tools; tenants' backends do the same).
pub fn mint(key: &SigningKey, claims: TokenClaims, now_ms: u64, lifetime_ms: u64) -> String {
    let mut full = Claims::new(claims);
    full.issued_at = Some(millis(now_ms / 1000 * 1000));
    full.expiration = Some(millis((now_ms + lifetime_ms) / 1000 * 1000));
    let header = Header::empty().with_token_type("JWT");
    match key {
        SigningKey::Hs256(k) => Hs256.token(&header, &full, k),
        SigningKey::Ed25519(k) => Ed25519.token(&header, &full, k),
    }
    .expect("serializing claims cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn claims(tenant: &str, room: &str, role: &str) -> TokenClaims {
        TokenClaims {
            sub: "u1".into(),
            name: "Ana".into(),
            room: room.into(),
            role: role.into(),
            tenant: tenant.into(),
        }
    }

    fn keyring() -> (Keyring, SigningKey, SigningKey) {
        let acme = SigningKey::hs256(b"acme-secret-0123456789");
        let beta = SigningKey::ed25519_from_seed([7; 32]);
        let mut ring = Keyring::default();
        ring.insert("acme".into(), acme.tenant_key());
        ring.insert("beta".into(), beta.tenant_key());
        (ring, acme, beta)
    }

    /// A token without a name is shown by its `sub`, cut to a name's bound on a
    /// character: a 128-byte `sub` made a 128-byte display name past the 64-byte limit.
    #[test]
    fn a_token_without_a_name_shows_its_sub_within_the_names_bound() {
        let (ring, acme, _) = keyring();
        for sub in [
            "u".repeat(USER_ID_BYTES_MAX),
            "é".repeat(USER_ID_BYTES_MAX / 2),
            "u".repeat(USER_NAME_BYTES_MAX - 1) + "é",
        ] {
            let mut nameless = claims("acme", "*", "viewer");
            nameless.sub = sub.clone();
            nameless.name = String::new();
            let verified = ring
                .verify(&mint(&acme, nameless, NOW, 60_000), NOW)
                .unwrap();
            assert_eq!(verified.user, sub, "the user is the whole sub");
            assert!(
                verified.name.len() <= USER_NAME_BYTES_MAX,
                "{}",
                verified.name
            );
            assert!(sub.starts_with(&verified.name));
            assert!(verified.name.len() >= USER_NAME_BYTES_MAX - 1);
        }
        let mut short = claims("acme", "*", "viewer");
        short.name = String::new();
        let verified = ring.verify(&mint(&acme, short, NOW, 60_000), NOW).unwrap();
        assert_eq!(verified.name, "u1");
    }

    #[test]
    fn hs256_and_eddsa_tokens_verify() {
        let (ring, acme, beta) = keyring();
        let t = mint(&acme, claims("acme", "weur-a", "viewer"), NOW, 60_000);
        let v = ring.verify(&t, NOW).unwrap();
        assert_eq!((v.user.as_str(), v.role), ("u1", Role::Viewer));
        assert!(v.authorize_room("weur-a").is_ok());
        assert_eq!(v.authorize_room("weur-b"), Err(AuthError::WrongRoom));
        let t = mint(&beta, claims("beta", "*", "admin"), NOW, 60_000);
        let v = ring.verify(&t, NOW).unwrap();
        assert!(v.require_admin().is_ok() && v.authorize_room("weur-b").is_ok());
    }

    #[test]
    fn each_bad_token_has_its_own_code() {
        let (ring, acme, _) = keyring();
        let expired = mint(&acme, claims("acme", "*", "viewer"), NOW - 120_000, 60_000);
        assert_eq!(ring.verify(&expired, NOW), Err(AuthError::Expired));
        let forged = mint(
            &SigningKey::hs256(b"not-the-secret-at-all"),
            claims("acme", "*", "viewer"),
            NOW,
            60_000,
        );
        assert_eq!(ring.verify(&forged, NOW), Err(AuthError::InvalidSignature));
        let cross = mint(&acme, claims("beta", "*", "admin"), NOW, 60_000);
        assert_eq!(ring.verify(&cross, NOW), Err(AuthError::WrongTenant));
        let unknown = mint(&acme, claims("zeta", "*", "viewer"), NOW, 60_000);
        assert_eq!(ring.verify(&unknown, NOW), Err(AuthError::UnknownTenant));
        let long = mint(
            &acme,
            claims("acme", "*", "viewer"),
            NOW,
            TOKEN_LIFETIME_MS_MAX + 5_000,
        );
        assert_eq!(ring.verify(&long, NOW), Err(AuthError::LifetimeTooLong));
        assert!(matches!(
            ring.verify("abc.def", NOW),
            Err(AuthError::Malformed(_))
        ));
        assert_eq!(ring.verify("", NOW), Err(AuthError::Missing));
        let codes: std::collections::BTreeSet<_> = [
            AuthError::Missing,
            AuthError::Malformed(String::new()),
            AuthError::UnknownTenant,
            AuthError::InvalidSignature,
            AuthError::WrongTenant,
            AuthError::Expired,
            AuthError::LifetimeTooLong,
            AuthError::WrongRoom,
            AuthError::NotAdmin,
            AuthError::IssuedInFuture,
            AuthError::IssuedAtMissing,
        ]
        .iter()
        .map(AuthError::code)
        .collect();
        assert_eq!(codes.len(), 11);
    }

    /// A token signed with `key` carrying exactly `claims` (no defaults added).
    fn signed(key: &SigningKey, claims: Claims<TokenClaims>) -> String {
        let header = Header::empty().with_token_type("JWT");
        match key {
            SigningKey::Hs256(k) => Hs256.token(&header, &claims, k),
            SigningKey::Ed25519(k) => Ed25519.token(&header, &claims, k),
        }
        .unwrap()
    }

    #[test]
    fn a_token_from_the_future_or_without_iat_is_refused() {
        let (ring, acme, beta) = keyring();
        // Minted by a clock up to the leeway ahead of ours: accepted.
        let ahead = mint(
            &acme,
            claims("acme", "*", "viewer"),
            NOW + TOKEN_IAT_LEEWAY_MS,
            60_000,
        );
        assert!(ring.verify(&ahead, NOW).is_ok());
        // A full-lifetime token from that clock: `exp - iat` is the lifetime, so it is
        // taken (measured from our clock it was the leeway longer, and refused); a second
        // more is not.
        for ahead_ms in [1_000, TOKEN_IAT_LEEWAY_MS] {
            let full = mint(
                &acme,
                claims("acme", "*", "viewer"),
                NOW + ahead_ms,
                TOKEN_LIFETIME_MS_MAX,
            );
            assert!(ring.verify(&full, NOW).is_ok(), "{ahead_ms} ms ahead");
            let longer = mint(
                &acme,
                claims("acme", "*", "viewer"),
                NOW + ahead_ms,
                TOKEN_LIFETIME_MS_MAX + 1_000,
            );
            assert_eq!(ring.verify(&longer, NOW), Err(AuthError::LifetimeTooLong));
        }
        // One second past the leeway (`iat` has whole seconds): refused.
        let future = mint(
            &acme,
            claims("acme", "*", "viewer"),
            NOW + TOKEN_IAT_LEEWAY_MS + 1_000,
            60_000,
        );
        assert_eq!(ring.verify(&future, NOW), Err(AuthError::IssuedInFuture));
        // A year ahead with a short lifetime on paper: no way around the lifetime limit.
        let far = mint(
            &beta,
            claims("beta", "*", "admin"),
            NOW + 365 * 24 * 3_600_000,
            60_000,
        );
        assert_eq!(ring.verify(&far, NOW), Err(AuthError::IssuedInFuture));
        let mut no_iat = Claims::new(claims("acme", "*", "viewer"));
        no_iat.expiration = Some(millis(NOW + 60_000));
        let no_iat = signed(&acme, no_iat);
        assert_eq!(ring.verify(&no_iat, NOW), Err(AuthError::IssuedAtMissing));
        assert_eq!(AuthError::IssuedInFuture.status(), 401);
        assert_eq!(AuthError::IssuedAtMissing.status(), 401);
    }

    #[test]
    fn every_claim_takes_its_limit_and_is_refused_one_past_it() {
        let (ring, acme, _) = keyring();
        type Set = fn(&mut TokenClaims, String);
        let fields: [(&str, usize, Set); 4] = [
            ("sub", USER_ID_BYTES_MAX, |c, v| c.sub = v),
            ("name", USER_NAME_BYTES_MAX, |c, v| c.name = v),
            ("room", ROOM_ID_BYTES_MAX, |c, v| c.room = v),
            ("tenant", TENANT_ID_BYTES_MAX, |c, v| c.tenant = v),
        ];
        for (field, max, set) in fields {
            let token = |bytes: usize| {
                let mut claims = claims("acme", "*", "viewer");
                set(&mut claims, "a".repeat(bytes));
                mint(&acme, claims, NOW, 60_000)
            };
            let mut ring = ring.clone();
            if field == "tenant" {
                // A tenant id at the limit needs a key of its own to get that far.
                ring.insert("a".repeat(max), acme.tenant_key());
                ring.insert("a".repeat(max + 1), acme.tenant_key());
            }
            assert!(ring.verify(&token(max), NOW).is_ok(), "{field} at {max}");
            assert!(
                matches!(ring.verify(&token(max + 1), NOW), Err(AuthError::Malformed(m)) if m.contains(field)),
                "{field} one past {max}"
            );
        }
        // A user id the ledger refuses in an account's name: refused here, not each gift.
        for sub in ["ann\n", "ann\u{7}", "\u{0}", ovation_proto::SYSTEM_SENDER] {
            let mut with = claims("acme", "*", "viewer");
            with.sub = sub.into();
            assert!(
                matches!(ring.verify(&mint(&acme, with, NOW, 60_000), NOW), Err(AuthError::Malformed(m)) if m.contains("sub")),
                "{sub:?}"
            );
        }
        let lifetime = |ms: u64| mint(&acme, claims("acme", "*", "viewer"), NOW, ms);
        assert!(ring.verify(&lifetime(TOKEN_LIFETIME_MS_MAX), NOW).is_ok());
        assert_eq!(
            ring.verify(&lifetime(TOKEN_LIFETIME_MS_MAX + 1_000), NOW),
            Err(AuthError::LifetimeTooLong)
        );
    }

    /// A token whose signature fails under its tenant's key is tried with at most
    /// `WRONG_TENANT_KEYS_TRIED_MAX` other keys of its algorithm (in tenant order) to
    /// tell `token_wrong_tenant`: a forged token once cost a check with every key.
    #[test]
    fn a_token_of_another_tenant_is_tried_with_a_bounded_number_of_keys() {
        let mut ring = Keyring::default();
        let tenants = WRONG_TENANT_KEYS_TRIED_MAX + 4;
        let keys: Vec<SigningKey> = (0..=tenants)
            .map(|i| SigningKey::hs256(format!("secret-of-tenant-{i:02}-0123").as_bytes()))
            .collect();
        for (i, key) in keys.iter().enumerate() {
            ring.insert(format!("t{i:02}"), key.tenant_key());
        }
        // Eddsa keys are never tried for an HS256 token, and do not count.
        let eddsa = SigningKey::ed25519_from_seed([9; 32]);
        ring.insert("t00a".into(), eddsa.tenant_key());
        let signed_by = |i: usize| mint(&keys[i], claims("t00", "*", "viewer"), NOW, 60_000);
        assert_eq!(
            ring.verify(&signed_by(WRONG_TENANT_KEYS_TRIED_MAX), NOW),
            Err(AuthError::WrongTenant),
            "among the keys tried"
        );
        assert_eq!(
            ring.verify(&signed_by(WRONG_TENANT_KEYS_TRIED_MAX + 1), NOW),
            Err(AuthError::InvalidSignature),
            "one past the keys tried"
        );
    }

    #[test]
    fn keyring_config_is_validated() {
        // Every entry usable.
        let usable = |json: &str| {
            Keyring::from_json(json).is_ok_and(|ring| ring.unusable().next().is_none())
        };
        assert!(usable(r#"{"a":{"hs256":"0123456789abcdef"}}"#));
        assert!(!usable(r#"{"a":{"hs256":"short"}}"#));
        assert!(!usable(r#"{"a":{}}"#));
        assert!(!usable(r#"{"a":{"hs256":"0123456789abcdef","extra":1}}"#));
        // Tenant ids hold no account or object separator, and stay within their bound.
        let hs = r#"{"hs256":"0123456789abcdef"}"#;
        for bad in ["acme:eu", "acme/eu", "", "a b", "é"] {
            let json = format!(r#"{{"{bad}":{hs}}}"#);
            assert!(!usable(&json), "{bad:?}");
        }
        let longest = "t".repeat(TENANT_ID_BYTES_MAX);
        assert!(usable(&format!(r#"{{"{longest}":{hs}}}"#)));
        let past = "t".repeat(TENANT_ID_BYTES_MAX + 1);
        assert!(!usable(&format!(r#"{{"{past}":{hs}}}"#)));
        assert!(usable(&format!(r#"{{"acme-eu_1.x":{hs}}}"#)));
        // Nothing readable at all: the whole keyring is refused.
        for unreadable in ["", "[]", "{", r#"{"a":1"#] {
            assert!(Keyring::from_json(unreadable).is_err(), "{unreadable:?}");
        }
        let too_many: BTreeMap<String, serde_json::Value> = (0..=TENANTS_MAX)
            .map(|i| {
                (
                    format!("t{i}"),
                    serde_json::json!({"hs256": "0123456789abcdef"}),
                )
            })
            .collect();
        let too_many = serde_json::to_string(&too_many).unwrap();
        assert!(Keyring::from_json(&too_many).is_err());
        let public = base64::engine::general_purpose::STANDARD.encode(
            match SigningKey::ed25519_from_seed([1; 32]).tenant_key() {
                TenantKey::Ed25519(k) => k.to_vec(),
                TenantKey::Hs256(_) => unreachable!(),
            },
        );
        let ring =
            Keyring::from_json(&format!(r#"{{"b":{{"ed25519_public":"{public}"}}}}"#)).unwrap();
        let t = mint(
            &SigningKey::ed25519_from_seed([1; 32]),
            claims("b", "*", "host"),
            NOW,
            1000,
        );
        assert_eq!(ring.verify(&t, NOW).unwrap().role, Role::Host);
    }

    /// One tenant's entry that cannot be used (a short secret, a typo in a field)
    /// refuses that tenant's tokens with `auth_not_configured` (503); the other tenants'
    /// tokens still verify. It used to refuse every token of every tenant.
    #[test]
    fn one_tenants_bad_entry_refuses_only_that_tenants_tokens() {
        let good = SigningKey::hs256(b"0123456789abcdef");
        let json = r#"{"good":{"hs256":"0123456789abcdef"},
                       "bad":{"hs256":"0123456789abcdef","ed25519_publc":"x"}}"#;
        let ring = Keyring::from_json(json).unwrap();
        let unusable: Vec<(&str, &str)> = ring.unusable().collect();
        assert_eq!(unusable.len(), 1);
        assert_eq!(unusable[0].0, "bad");
        assert!(unusable[0].1.contains("ed25519_publc"), "{unusable:?}");
        let t = mint(&good, claims("good", "*", "host"), NOW, 1000);
        assert_eq!(ring.verify(&t, NOW).unwrap().role, Role::Host);
        let t = mint(&good, claims("bad", "*", "host"), NOW, 1000);
        let refused = ring.verify(&t, NOW).unwrap_err();
        assert_eq!(refused, AuthError::TenantKeyUnusable);
        assert_eq!(
            (refused.status(), refused.code()),
            (503, "auth_not_configured")
        );
    }

    #[test]
    fn the_development_keys_file_configures_both_development_tenants() {
        let file = dev::dev_vars(&[("OVATION_SETTLEMENT_SECRET", dev::SETTLEMENT_SECRET)]);
        let line = file
            .lines()
            .find_map(|l| l.strip_prefix("OVATION_TENANT_KEYS='"))
            .expect("the keys line");
        let ring = Keyring::from_json(line.trim_end_matches('\'')).unwrap();
        for (tenant, secret) in [
            (dev::TENANT, dev::HS256_SECRET),
            (dev::OTHER_TENANT, dev::OTHER_HS256_SECRET),
        ] {
            let t = mint(
                &SigningKey::hs256(secret.as_bytes()),
                claims(tenant, "*", "admin"),
                NOW,
                1000,
            );
            assert_eq!(ring.verify(&t, NOW).unwrap().tenant, tenant);
        }
        assert!(file.contains("OVATION_SETTLEMENT_SECRET='ovation-dev-settlement-secret'\n"));
    }
}

/// The development tenants that `cargo xtask dev` and the integration tests give
/// `wrangler dev` (in a generated env file, never in `edge-worker/wrangler.toml`, so
/// `wrangler deploy` cannot ship them). Never use these keys in production
/// (`wrangler secret put OVATION_TENANT_KEYS`).
pub mod dev {
    pub const TENANT: &str = "dev";
    pub const HS256_SECRET: &str = "ovation-dev-secret-change-me";
    /// A second tenant, so tests can prove tenants cannot see each other's rooms.
    pub const OTHER_TENANT: &str = "other";
    pub const OTHER_HS256_SECRET: &str = "ovation-other-tenant-secret";
    /// Bearer secret of the settlement service under `cargo xtask dev`.
    pub const SETTLEMENT_SECRET: &str = "ovation-dev-settlement-secret";
    /// Every development secret: a deploy bundle must carry none of them.
    pub const SECRETS: [&str; 3] = [HS256_SECRET, OTHER_HS256_SECRET, SETTLEMENT_SECRET];

    /// `OVATION_TENANT_KEYS` for the development tenants (the keyring's JSON).
    pub fn tenant_keys_json() -> String {
        serde_json::json!({
            TENANT: { "hs256": HS256_SECRET },
            OTHER_TENANT: { "hs256": OTHER_HS256_SECRET },
        })
        .to_string()
    }

    /// A dotenv file (wrangler's `.dev.vars` format, for `wrangler dev --env-file`)
    /// setting `OVATION_TENANT_KEYS` to the development tenants, plus `extra` variables.
    /// Values are single-quoted: JSON never holds a single quote here.
    pub fn dev_vars(extra: &[(&str, &str)]) -> String {
        let mut file = format!(
            "# Generated for wrangler dev: development keys only.\nOVATION_TENANT_KEYS='{}'\n",
            tenant_keys_json()
        );
        for (name, value) in extra {
            file.push_str(&format!("{name}='{value}'\n"));
        }
        file
    }
}
