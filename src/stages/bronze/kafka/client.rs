//! Connecting to Kafka brokers: the brokers from `--kafka-brokers` or `[sources.<name>]
//! kafka_brokers`, and SASL and TLS from the environment, where secrets belong (a password in
//! a flag would show in process listings, one in the config file in every copy of it):
//!
//! - `LOGLAKE_KAFKA_SASL_MECHANISM`: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`, with
//!   `LOGLAKE_KAFKA_SASL_USERNAME` and `LOGLAKE_KAFKA_SASL_PASSWORD`;
//! - `LOGLAKE_KAFKA_TLS=true` for TLS with the system's root certificates, or
//!   `LOGLAKE_KAFKA_TLS_CA=<file.pem>` for TLS with that CA instead.
//!
//! The client is pure Rust (`rskafka`), so the build needs no librdkafka.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};

/// How long connecting, or any one request after retries, may take before the stage fails:
/// a broker that is down should fail the run with its name, not hang a cron job.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A connected client and the runtime its requests run on.
pub struct Connection {
    pub runtime: tokio::runtime::Runtime,
    pub client: Arc<Client>,
    /// The brokers as given, for messages.
    pub brokers: String,
}

/// Connect to `brokers` (`host:port`, comma-separated).
pub fn connect(brokers: &str) -> Result<Connection> {
    let list: Vec<String> = brokers
        .split(',')
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    if list.is_empty() {
        bail!("no Kafka brokers given: --kafka-brokers host:port[,host:port…]");
    }
    let mut builder = ClientBuilder::new(list)
        .client_id("loglake")
        .backoff_config(rskafka::BackoffConfig {
            deadline: Some(DEADLINE),
            ..Default::default()
        });
    if let Some(sasl) = sasl_from_env()? {
        builder = builder.sasl_config(sasl);
    }
    if let Some(tls) = tls_from_env()? {
        builder = builder.tls_config(tls);
    }
    // One worker: it fetches the next response while this thread writes the last one.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the Kafka client's runtime")?;
    let client = runtime
        .block_on(async { tokio::time::timeout(DEADLINE, builder.build()).await })
        .map_err(|_| anyhow::anyhow!("no answer within {} s", DEADLINE.as_secs()))
        .and_then(|built| built.map_err(anyhow::Error::from))
        .with_context(|| {
            format!("could not connect to the Kafka brokers {brokers} (check --kafka-brokers, that they are up, and LOGLAKE_KAFKA_* for SASL/TLS)")
        })?;
    Ok(Connection {
        runtime,
        client: Arc::new(client),
        brokers: brokers.to_string(),
    })
}

/// `work` on the client's runtime, given up after [`DEADLINE`]: a broker that went away
/// mid-batch is retried by the client (with backoff, for each request), and a run must end
/// with one line that says so rather than wait for every request to exhaust its retries.
pub fn within<T, E>(
    connection: &Connection,
    what: impl FnOnce() -> String,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T>
where
    E: Into<anyhow::Error>,
{
    match connection
        .runtime
        .block_on(async { tokio::time::timeout(DEADLINE, work).await })
    {
        Ok(done) => done.map_err(Into::into).with_context(what),
        Err(_) => bail!(
            "the Kafka brokers {} did not answer within {} s while {}; nothing of this topic was committed by this run (run 01-bronze again once they are back)",
            connection.brokers,
            DEADLINE.as_secs(),
            what()
        ),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn sasl_from_env() -> Result<Option<SaslConfig>> {
    let Some(mechanism) = env("LOGLAKE_KAFKA_SASL_MECHANISM") else {
        return Ok(None);
    };
    let (Some(username), Some(password)) = (
        env("LOGLAKE_KAFKA_SASL_USERNAME"),
        env("LOGLAKE_KAFKA_SASL_PASSWORD"),
    ) else {
        bail!(
            "LOGLAKE_KAFKA_SASL_MECHANISM is set but LOGLAKE_KAFKA_SASL_USERNAME or LOGLAKE_KAFKA_SASL_PASSWORD is not: set both"
        );
    };
    crate::secrets::register(&password);
    let credentials = Credentials::new(username, password);
    Ok(Some(match mechanism.to_ascii_uppercase().as_str() {
        "PLAIN" => SaslConfig::Plain(credentials),
        "SCRAM-SHA-256" => SaslConfig::ScramSha256(credentials),
        "SCRAM-SHA-512" => SaslConfig::ScramSha512(credentials),
        other => bail!(
            "LOGLAKE_KAFKA_SASL_MECHANISM {other:?} is not one loglake speaks: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
        ),
    }))
}

fn tls_from_env() -> Result<Option<Arc<rustls::ClientConfig>>> {
    let ca = env("LOGLAKE_KAFKA_TLS_CA");
    let on = env("LOGLAKE_KAFKA_TLS")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
        .unwrap_or(false);
    if !on && ca.is_none() {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    match &ca {
        Some(path) => {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading LOGLAKE_KAFKA_TLS_CA {path}"))?
            {
                let cert = cert.with_context(|| format!("LOGLAKE_KAFKA_TLS_CA {path}"))?;
                roots
                    .add(cert)
                    .with_context(|| format!("a certificate in LOGLAKE_KAFKA_TLS_CA {path}"))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                bail!(
                    "LOGLAKE_KAFKA_TLS is set but no system root certificates were found: give the broker's CA with LOGLAKE_KAFKA_TLS_CA=<file.pem>"
                );
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS settings for Kafka")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}
