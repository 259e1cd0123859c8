//! Secrets loglake is given and must never repeat: the database password, however the URL
//! carries it.
//!
//! Redacting at each place a URL is printed is not enough: a driver's error can quote the
//! URL, a lock record quotes the command line, and a new message can forget to redact. So
//! every password loglake learns is registered here the moment it is known (from the flag, the
//! environment, the config file), and everything loglake writes for people — the error line,
//! log lines, the lock record — passes through [`scrub`], which replaces each registered
//! secret wherever it appears. [`redact_url`] is the readable form of a URL for messages.

use std::borrow::Cow;
use std::sync::RwLock;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// What stands in for a secret.
pub const MASK: &str = "***";

/// Query parameters that carry a password (libpq's `password`, and the usual spellings).
fn is_secret_param(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "password" | "passwd" | "pwd" | "pass" | "sslpassword" | "secret" | "token"
    )
}

/// Secrets shorter than this are not scrubbed from free text (they are still redacted from
/// URLs): replacing every `pw` in a message would garble it while protecting nothing a
/// two-letter password could protect.
const MIN_SCRUBBED_LEN: usize = 6;

/// Remember `secret` (and its percent-decoded form) so that [`scrub`] hides it.
pub fn register(secret: &str) {
    if secret.chars().count() < MIN_SCRUBBED_LEN || secret == MASK {
        return;
    }
    let decoded = percent_decode(secret);
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for s in [secret.to_string(), decoded] {
        if s.chars().count() >= MIN_SCRUBBED_LEN && !secrets.contains(&s) {
            secrets.push(s);
        }
    }
    // Longest first, so a secret containing another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Register the password(s) a database URL carries: the user-info password and any
/// password-like query parameter — read loosely when the text does not parse as a URL (a
/// mistyped port, no scheme), since a mistyped URL is exactly the one an error message quotes.
pub fn register_url(url: &str) {
    let Ok(parsed) = url::Url::parse(url.trim()) else {
        let loose = Loose::of(url);
        for secret in loose.password.into_iter().chain(loose.params) {
            register(secret);
        }
        return;
    };
    if let Some(p) = parsed.password() {
        register(p);
    }
    for (k, v) in parsed.query_pairs() {
        if is_secret_param(&k) {
            register(&v);
        }
    }
}

/// `text` with every registered secret replaced by [`MASK`].
pub fn scrub(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    Cow::Owned(out)
}

/// A URL fit to print: its password and password-like query parameters replaced by
/// [`MASK`]. Text that does not parse as a URL is scrubbed of registered secrets only.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        let loose = Loose::of(url);
        let mut out = url.to_string();
        for secret in loose.password.into_iter().chain(loose.params) {
            if !secret.is_empty() {
                out = out.replace(secret, MASK);
            }
        }
        return scrub(&out).into_owned();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(MASK));
    }
    if parsed.query_pairs().any(|(k, _)| is_secret_param(&k)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_param(&k) {
                    MASK.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // `url` percent-encodes the mask in user info; print it plainly.
    scrub(&parsed.to_string().replace("%2A%2A%2A", MASK)).into_owned()
}

/// The secrets of a URL-shaped text that does not parse: what stands between the first `:`
/// and the last `@` of its user info (after `scheme://`, `scheme:/` or nothing), and the
/// values of password-like query parameters.
struct Loose<'a> {
    password: Option<&'a str>,
    params: Vec<&'a str>,
}

impl<'a> Loose<'a> {
    fn of(text: &'a str) -> Self {
        let text = text.trim();
        let (before_query, query) = text.split_once('?').unwrap_or((text, ""));
        let password = before_query.rfind('@').and_then(|at| {
            let info = &before_query[..at];
            let info = match (info.find("://"), info.find(":/")) {
                (Some(i), _) => &info[i + 3..],
                (None, Some(i)) => info[i + 2..].trim_start_matches('/'),
                (None, None) => info,
            };
            info.split_once(':')
                .map(|(_, password)| password)
                .filter(|p| !p.is_empty())
        });
        let params = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(k, v)| is_secret_param(k) && !v.is_empty())
            .map(|(_, v)| v)
            .collect();
        Loose { password, params }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A writer for log output that scrubs each write (tracing formats an event into one write).
pub struct ScrubbingWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for ScrubbingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.0.write_all(scrub(text).as_bytes())?,
            Err(_) => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_passwords_in_every_form() {
        assert_eq!(
            redact_url("postgres://u:s3cr%40t@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        let q = redact_url("postgres://alice@host/db?sslmode=require&password=hunter2");
        assert!(!q.contains("hunter2"), "{q}");
        assert!(q.contains("sslmode=require"), "{q}");
        assert_eq!(
            redact_url("sqlite://lake/loglake.db"),
            "sqlite://lake/loglake.db"
        );
    }

    #[test]
    fn urls_that_do_not_parse_lose_their_passwords_too() {
        for url in [
            "postgres://special:Wr0ngPassw0rdQ@127.0.0.1:abc/special",
            "postgres://special:Wr0ngPassw0rdQ@127.0.0.1:99999/special",
            "postgres://special:Wr0ngPassw0rdQ@my host/special",
            "postgres://special:Wr0ngPassw0rdQ@[::1/special",
            "postgres:/special:Wr0ngPassw0rdQ@127.0.0.1/special",
            "special:Wr0ngPassw0rdQ@127.0.0.1/special",
            "postgres://u@127.0.0.1:abc/db?sslmode=require&password=Wr0ngPassw0rdQ",
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains("Wr0ngPassw0rdQ"), "{url} -> {shown}");
            register_url(url);
            let quoted = format!("error with {url}: invalid port");
            assert!(!scrub(&quoted).contains("Wr0ngPassw0rdQ"), "{url}");
        }
    }

    #[test]
    fn registered_secrets_are_scrubbed_everywhere() {
        register_url("postgres://bob:pa%24%24word9@db/x?password=zq-canary-17");
        let text =
            "connect failed: postgres://bob:pa$$word9@db/x password=zq-canary-17 (pa%24%24word9)";
        let clean = scrub(text);
        assert!(!clean.contains("pa$$word9"), "{clean}");
        assert!(!clean.contains("pa%24%24word9"), "{clean}");
        assert!(!clean.contains("zq-canary-17"), "{clean}");
        assert_eq!(scrub("nothing secret here"), "nothing secret here");
        // A short password is redacted from URLs but does not garble every message.
        register_url("postgres://u:ab@h/db");
        assert_eq!(scrub("database at h"), "database at h");
        assert_eq!(redact_url("postgres://u:ab@h/db"), "postgres://u:***@h/db");
    }
}
