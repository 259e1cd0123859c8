//! API tokens for `loglake serve`: how one is made, written and checked.
//!
//! A token reads `llt_<id>_<secret>`: the id is public (listings, logs, revocation), the
//! secret is 32 random bytes shown once, when `loglake tokens create` makes it, and stored
//! only as its SHA-256 — a copy of the database lets nobody in. A presented token is found by
//! its id and accepted when its secret hashes to the stored value (compared in constant time)
//! and it is not revoked.

use anyhow::{Result, bail};
use chrono::Utc;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use crate::records::{ApiToken, Scope};

/// What every token starts with: tells a loglake token from other secrets in a log or a
/// leaked file, and a token from its id.
pub const PREFIX: &str = "llt_";

/// Longest token name: it is recorded as the author of every verdict given with the token.
pub const MAX_NAME: usize = 100;

/// A new token for `name` with `scopes`: the row to store, and the whole token to show once.
pub fn make(name: &str, scopes: &[Scope]) -> Result<(ApiToken, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        bail!(
            "a token's name says whom it speaks for (verdicts are recorded under it): give 1 to {MAX_NAME} printable characters"
        );
    }
    if scopes.is_empty() {
        bail!("give the token at least one --scope (read, score, feedback)");
    }
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut id);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let (id, secret) = (hex(&id), hex(&secret));
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    let token = ApiToken {
        token_id: id.clone(),
        name: name.to_string(),
        scopes,
        secret_sha256: digest(&secret),
        created_at: Utc::now(),
        revoked_at: None,
    };
    Ok((token, format!("{PREFIX}{id}_{secret}")))
}

/// A presented token taken apart: its id and its secret; `None` when it is not shaped like
/// one of ours.
pub fn split(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.trim().strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex_of = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex_of(id, 12) && hex_of(secret, 64)).then_some((id, secret))
}

/// Whether `secret` is the secret of `token` (and the token is live).
pub fn accepts(token: &ApiToken, secret: &str) -> bool {
    token.revoked_at.is_none() && same(digest(secret).as_bytes(), token.secret_sha256.as_bytes())
}

/// Equal bytes, in time that does not depend on where they first differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_accepted_by_its_secret_only_until_revoked() {
        let (mut row, token) = make("alice", &[Scope::Feedback, Scope::Read]).unwrap();
        assert!(token.starts_with(PREFIX));
        let (id, secret) = split(&token).expect("our shape");
        assert_eq!(id, row.token_id);
        assert!(!row.secret_sha256.contains(secret), "only the hash is kept");
        assert!(accepts(&row, secret));
        let mut wrong = secret.to_string();
        wrong.replace_range(0..1, if secret.starts_with('0') { "1" } else { "0" });
        assert!(!accepts(&row, &wrong));
        assert_eq!(row.scopes, vec![Scope::Read, Scope::Feedback]);
        row.revoked_at = Some(Utc::now());
        assert!(!accepts(&row, secret));
        // Two tokens never share a secret or an id.
        let (other, _) = make("alice", &[Scope::Read]).unwrap();
        assert_ne!(other.token_id, row.token_id);
        assert_ne!(other.secret_sha256, row.secret_sha256);
    }

    #[test]
    fn malformed_tokens_and_names_are_refused() {
        assert!(split("Bearer xyz").is_none());
        assert!(split("llt_abc_def").is_none());
        assert!(split(&format!("llt_{}_{}", "g".repeat(12), "0".repeat(64))).is_none());
        assert!(make("", &[Scope::Read]).is_err());
        assert!(make("x\ny", &[Scope::Read]).is_err());
        assert!(make(&"x".repeat(MAX_NAME + 1), &[Scope::Read]).is_err());
        assert!(make("ci", &[]).is_err());
    }
}
