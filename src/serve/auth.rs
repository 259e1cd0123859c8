//! Who may ask `loglake serve` what: API tokens with scopes, and the checks that keep a web
//! page from speaking for the operator.
//!
//! Two modes, chosen by the `api_tokens` table, not by a setting that could be left off:
//!
//! - **Tokens** (any live token exists): every route but `/healthz` and the OpenAPI document
//!   needs `Authorization: Bearer llt_…` with the route's scope (`read`, `score`,
//!   `feedback`); a verdict is recorded under the token's name, whatever the body says; each
//!   token may make `[serve] requests_per_minute` requests a minute.
//! - **Open** (no live token): allowed only on a loopback address — `serve` refuses to start
//!   beyond it, and answers 401 if every token is revoked while it listens there. A browser
//!   on the operator's machine can still reach a loopback port, so requests must name a
//!   loopback `Host` (a DNS-rebinding page names its own), must carry no `Origin` (browsers
//!   send one with every cross-site request; curl and scripts do not), and verdicts must be
//!   `application/json` (which a page cannot send cross-site without a preflight nobody
//!   answers).
//!
//! Tokens are read from the database at most every [`REFRESH`], so a revoked token stops
//! working within that time.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::{Service, error};
use crate::records::{ApiToken, Scope};

/// How long the tokens read from the database are trusted before they are read again.
pub const REFRESH: Duration = Duration::from_secs(5);

/// The caller a request was accepted for: a token's name, or nobody (open mode).
#[derive(Debug, Clone)]
pub enum Caller {
    Token { name: String },
    Local,
}

/// The live tokens by id.
type Tokens = Arc<HashMap<String, ApiToken>>;

/// An answer that refuses a request (boxed: a response is large beside what is admitted).
type Refused = Box<Response>;

/// The tokens, as last read, and each token's requests in the current minute.
pub struct Gate {
    /// Whether the service listens on a loopback address only.
    loopback: bool,
    per_minute: u32,
    tokens: Mutex<Option<(Instant, Tokens)>>,
    used: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Gate {
    pub fn new(loopback: bool, per_minute: u32) -> Self {
        Self {
            loopback,
            per_minute,
            tokens: Mutex::new(None),
            used: Mutex::new(HashMap::new()),
        }
    }

    /// The live tokens by id, from the database at most every [`REFRESH`].
    async fn live(&self, service: &Service) -> Result<Tokens, Refused> {
        if let Some((read, tokens)) = &*self.tokens.lock().expect("tokens lock")
            && read.elapsed() < REFRESH
        {
            return Ok(tokens.clone());
        }
        let rows = service
            .db
            .call(|db| db.tokens())
            .await
            .map_err(|e| Box::new(error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}"))))?;
        let live: HashMap<String, ApiToken> = rows
            .into_iter()
            .filter(|t| t.revoked_at.is_none())
            .map(|t| (t.token_id.clone(), t))
            .collect();
        let live = Arc::new(live);
        *self.tokens.lock().expect("tokens lock") = Some((Instant::now(), live.clone()));
        Ok(live)
    }

    /// Let `headers`' request through for `scope` (`None`: any caller), or answer why not.
    pub async fn admit(
        &self,
        service: &Service,
        headers: &HeaderMap,
        scope: Option<Scope>,
    ) -> Result<Caller, Refused> {
        let tokens = self.live(service).await?;
        if tokens.is_empty() {
            return self.admit_local(headers);
        }
        let Some(scope) = scope else {
            return Ok(Caller::Local);
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(crate::tokens::split);
        let Some((id, secret)) = presented else {
            return Err(unauthorized(
                "this service needs an API token: Authorization: Bearer llt_… (loglake tokens create)",
            ));
        };
        let Some(token) = tokens.get(id).filter(|t| crate::tokens::accepts(t, secret)) else {
            return Err(unauthorized(
                "the API token is not valid (revoked, or mistyped)",
            ));
        };
        if !token.scopes.contains(&scope) {
            return Err(Box::new(error(
                StatusCode::FORBIDDEN,
                format!(
                    "the token {} has no {} scope (it has: {})",
                    token.token_id,
                    scope.as_str(),
                    token
                        .scopes
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )));
        }
        self.count(&token.token_id)?;
        Ok(Caller::Token {
            name: token.name.clone(),
        })
    }

    /// Open mode: a loopback listener, a loopback `Host`, no `Origin`.
    fn admit_local(&self, headers: &HeaderMap) -> Result<Caller, Refused> {
        if !self.loopback {
            return Err(unauthorized(
                "no live API token, and this service listens beyond loopback: create one with `loglake tokens create`",
            ));
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !is_loopback_host(host) {
            return Err(Box::new(error(
                StatusCode::FORBIDDEN,
                format!(
                    "Host {host:?} is not this machine's loopback name: without API tokens the service answers only localhost, 127.0.0.1 and [::1]"
                ),
            )));
        }
        if headers.contains_key(header::ORIGIN) {
            return Err(Box::new(error(
                StatusCode::FORBIDDEN,
                "requests from web pages (with an Origin header) need an API token".into(),
            )));
        }
        Ok(Caller::Local)
    }

    /// Count one request of token `id`; refuse past its allowance for the minute.
    fn count(&self, id: &str) -> Result<(), Refused> {
        let mut used = self.used.lock().expect("limits lock");
        let now = Instant::now();
        let (since, n) = used.entry(id.to_string()).or_insert((now, 0));
        if since.elapsed() >= Duration::from_secs(60) {
            (*since, *n) = (now, 0);
        }
        if *n >= self.per_minute {
            let wait = 60u64.saturating_sub(since.elapsed().as_secs()).max(1);
            let mut answer = error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "the token {id} made its {} requests of this minute ([serve] requests_per_minute): try again in {wait} s",
                    self.per_minute
                ),
            );
            answer.headers_mut().insert(
                header::RETRY_AFTER,
                wait.to_string().parse().expect("digits"),
            );
            return Err(Box::new(answer));
        }
        *n += 1;
        Ok(())
    }
}

/// `Host` names that only a client on this machine uses (with or without a port).
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn unauthorized(message: &str) -> Refused {
    let mut answer = error(StatusCode::UNAUTHORIZED, message.to_string());
    answer.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        "Bearer realm=\"loglake\"".parse().expect("ascii"),
    );
    Box::new(answer)
}

/// The route layer: admit the request for `scope`, and hand the handler its [`Caller`].
pub async fn guard(
    State((service, scope)): State<(Arc<Service>, Option<Scope>)>,
    mut request: Request,
    next: Next,
) -> Response {
    match service.gate.admit(&service, request.headers(), scope).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(answer) => *answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_from_others() {
        for host in [
            "localhost",
            "localhost:8080",
            "127.0.0.1",
            "127.0.0.1:1",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "loglake",
            "evil.example:8080",
            "10.0.0.1",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
