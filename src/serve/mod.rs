//! `loglake serve`: an HTTP service over the lake and the database, for the questions a batch
//! cannot answer live.
//!
//! - `POST /v1/sources/{source}/score` parses and scores raw lines against the source's latest
//!   event-level models ([`scorer`]);
//! - `GET /v1/anomalies` and `GET /v1/incidents` read the database, and
//!   `POST /v1/anomalies/{id}/feedback` records an operator's verdict;
//! - `GET /healthz` checks the lake and the database, `GET /metrics` exposes counters.
//!
//! The service only reads: it takes no lake lock, so batches keep running beside it, and it
//! picks up the models a later 04-train writes by checking, at most once a second per source,
//! whether their folders changed. Parsing and scoring run on tokio's blocking pool; database
//! queries go to one thread that owns the [`Database`] (whose synchronous calls drive their own
//! runtime, which cannot run inside the server's).

mod auth;
mod listen;
mod metrics;
pub mod scorer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::config::Settings;
use crate::db::Database;
use crate::db::api::AnomalyFilter;
use crate::detectors::SEVERITIES;
use crate::lake::Lake;
use crate::records::Scope;
use crate::workspace::{Access, Workspace};
use metrics::Metrics;
use scorer::{SourceModels, Stamp};

/// How long a revoked token may still be accepted (tokens are read again this often).
pub const TOKEN_REFRESH: Duration = auth::REFRESH;

/// How often, at most, a source's model folders are checked for a newer version.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// Serve until SIGTERM or Ctrl-C, on `listen` (or `[serve] listen`).
pub fn run(settings: Settings, listen: Option<String>) -> Result<()> {
    let listen = listen.unwrap_or_else(|| settings.serve.listen.clone());
    let Workspace { lake, db, .. } = Workspace::open(&settings, Access::Serve)?;
    let db = db.expect("serving connects the database");
    let tokens = db
        .tokens()?
        .iter()
        .filter(|t| t.revoked_at.is_none())
        .count();
    let db = DbThread::start(db)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| {
                format!("listening on {listen} (is the port taken? set --listen or [serve] listen)")
            })?;
        let addr = listener.local_addr()?;
        let loopback = addr.ip().is_loopback();
        if !loopback && tokens == 0 {
            bail!(
                "refusing to listen on {addr} beyond this machine with no API token: create one with `loglake tokens create --name NAME --scope read` (requests then need it), or listen on 127.0.0.1"
            );
        }
        if !loopback {
            tracing::warn!(
                %addr,
                "serving plain HTTP beyond loopback: tokens cross the network in the clear unless a TLS proxy is in front (see README, \"Security\")"
            );
        }
        let (max_body, serve) = (settings.serve.max_body_bytes, settings.serve.clone());
        let state = Arc::new(Service {
            gate: auth::Gate::new(loopback, serve.requests_per_minute),
            scoring: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            settings,
            lake,
            db,
            sources: Mutex::new(HashMap::new()),
            unreadable: Mutex::new(None),
            metrics: Metrics::default(),
        });
        let shutdown = shutdown_signal()?;
        // On stdout, for whoever started the service (and tests, which ask for port 0).
        crate::cli::output::println(&format!("serve: listening on http://{addr}"))?;
        tracing::info!(%addr, tokens, "serving");
        listen::serve(
            listener,
            router(state, max_body),
            Duration::from_secs(serve.header_timeout_seconds.max(1)),
            serve.max_connections,
            shutdown,
        )
        .await
        .context("serving HTTP")?;
        tracing::info!("stopped");
        Ok(())
    })
}

fn router(state: Arc<Service>, max_body: usize) -> Router {
    // Each route with the scope a token needs for it (`None`: any caller the gate admits).
    let scope = |scope: Option<Scope>| {
        axum::middleware::from_fn_with_state((state.clone(), scope), auth::guard)
    };
    Router::new()
        .route(
            "/v1/sources/{source}/score",
            post(score).route_layer(scope(Some(Scope::Score))),
        )
        .route(
            "/v1/anomalies",
            get(anomalies).route_layer(scope(Some(Scope::Read))),
        )
        .route(
            "/v1/incidents",
            get(incidents).route_layer(scope(Some(Scope::Read))),
        )
        .route(
            "/v1/anomalies/{id}/feedback",
            post(feedback).route_layer(scope(Some(Scope::Feedback))),
        )
        .route(
            "/metrics",
            get(metrics).route_layer(scope(Some(Scope::Read))),
        )
        .route("/healthz", get(healthz).route_layer(scope(None)))
        .route("/v1/openapi.json", get(openapi).route_layer(scope(None)))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method (see GET /v1/openapi.json)".into(),
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// `GET /v1/openapi.json`: the routes, their scopes and answers.
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

/// SIGTERM or Ctrl-C, listened for from the moment this is called (before the service says
/// it listens: a signal sent as soon as it has said so must stop it gracefully, not kill it).
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutting down: finishing the requests in flight");
    })
}

struct Service {
    /// Who may ask what (API tokens, or loopback only).
    gate: auth::Gate,
    /// Scoring runs on the blocking pool, at most this many requests at once.
    scoring: tokio::sync::Semaphore,
    settings: Settings,
    lake: Lake,
    db: DbThread,
    /// Unreadable model versions, as last looked for.
    unreadable: Mutex<Option<(Instant, Vec<std::path::PathBuf>)>>,
    /// Loaded sources, with when their stamp was last checked.
    sources: Mutex<HashMap<String, (Arc<SourceModels>, Instant)>>,
    metrics: Metrics,
}

/// How long the list of unreadable model versions `/healthz` reports is kept (finding them
/// reads every version's file).
const MODEL_CHECK: Duration = Duration::from_secs(60);

impl Service {
    /// Model versions whose file does not read: skipped (the newest readable one serves), and
    /// reported by `/healthz`; looked for at most every [`MODEL_CHECK`].
    async fn unreadable_models(self: &Arc<Self>) -> Vec<std::path::PathBuf> {
        if let Some((at, found)) = &*self.unreadable.lock().expect("models check lock")
            && at.elapsed() < MODEL_CHECK
        {
            return found.clone();
        }
        let lake = self.lake.clone();
        let found = tokio::task::spawn_blocking(move || {
            crate::detectors::SavedModel::unreadable(&lake, None)
        })
        .await
        .unwrap_or_default();
        *self.unreadable.lock().expect("models check lock") = Some((Instant::now(), found.clone()));
        found
    }

    /// The source's models, loaded on first use and again when its folders change; `None`
    /// when it has no event model.
    fn models(&self, source: &str) -> Result<Option<Arc<SourceModels>>> {
        {
            let mut loaded = self.sources.lock().expect("sources lock");
            if let Some((models, checked)) = loaded.get_mut(source) {
                if checked.elapsed() < RELOAD_CHECK {
                    return Ok(Some(models.clone()));
                }
                if Stamp::read(&self.lake, source) == models.stamp {
                    *checked = Instant::now();
                    return Ok(Some(models.clone()));
                }
            }
        }
        let Some(models) = SourceModels::load(&self.lake, &self.settings, source)? else {
            return Ok(None);
        };
        tracing::info!(source, version = %models.model_version, "models loaded");
        let models = Arc::new(models);
        self.sources
            .lock()
            .expect("sources lock")
            .insert(source.to_string(), (models.clone(), Instant::now()));
        Ok(Some(models))
    }
}

/// A JSON error answer: `{"error": "..."}`.
fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Time and count a request, whatever its answer.
fn finish(state: &Service, route: &'static str, started: Instant, response: Response) -> Response {
    state.metrics.request(
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn score(
    State(state): State<Arc<Service>>,
    Path(source): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let max_line = state.settings.serve.max_line_bytes;
    let response = match body {
        Err(rejection) => error(rejection.status(), rejection.body_text()),
        Ok(_) if !crate::lake::is_folder_name(&source) => error(
            StatusCode::BAD_REQUEST,
            format!(
                "{source:?} is not a source name: sources are named with letters, digits, - and _"
            ),
        ),
        Ok(body) if body.iter().all(u8::is_ascii_whitespace) => error(
            StatusCode::BAD_REQUEST,
            "the body holds no lines: send raw log lines, one per line".into(),
        ),
        Ok(body) if longest_line(&body) > max_line => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a line is longer than {max_line} bytes ([serve] max_line_bytes): split the body into log lines"
            ),
        ),
        Ok(body) => score_lines(&state, source, body).await,
    };
    finish(&state, "score", started, response)
}

/// The longest line of `body`, in bytes.
fn longest_line(body: &[u8]) -> usize {
    body.split(|&b| b == b'\n')
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0)
}

/// Score `body`'s lines on the blocking pool, at most [`Service::scoring`] requests at once.
async fn score_lines(state: &Arc<Service>, source: String, body: Bytes) -> Response {
    let Ok(_turn) = state.scoring.acquire().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
    };
    let worker = state.clone();
    let scored = tokio::task::spawn_blocking(move || -> Result<Option<_>> {
        let Some(models) = worker.models(&source)? else {
            return Ok(None);
        };
        models.score(&body).map(Some)
    })
    .await;
    match scored {
        Ok(Ok(Some(answer))) => {
            let detectors: Vec<&str> = answer
                .anomalies
                .iter()
                .map(|a| a.detector.as_str())
                .collect();
            state
                .metrics
                .scored(&answer.source, answer.lines, answer.quarantined, &detectors);
            Json(answer).into_response()
        }
        Ok(Ok(None)) => error(
            StatusCode::NOT_FOUND,
            "no event models for this source: run 04-train for it first (or check the name)".into(),
        ),
        Ok(Err(e)) if e.is::<scorer::UnreadableLines>() => {
            error(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}"))
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("scoring failed: {e}"),
        ),
    }
}

/// Unknown parameters are refused (400, naming the ones there are): a misspelled filter
/// (`severity=high` for `min_severity`) would otherwise return everything.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnomalyParams {
    source: Option<String>,
    since: Option<String>,
    until: Option<String>,
    detector: Option<String>,
    min_severity: Option<String>,
    limit: Option<i64>,
}

async fn anomalies(
    State(state): State<Arc<Service>>,
    params: Result<Query<AnomalyParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let started = Instant::now();
    let response = match params
        .map_err(|e| e.body_text())
        .and_then(|Query(p)| filter(&state, p))
    {
        Err(message) => error(StatusCode::BAD_REQUEST, message),
        Ok(filter) => match state
            .db
            .call(move |db| db.anomalies_matching(&filter))
            .await
        {
            Ok(rows) => Json(json!({ "anomalies": rows })).into_response(),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
        },
    };
    finish(&state, "anomalies", started, response)
}

/// The query string's filters, checked.
fn filter(state: &Service, p: AnomalyParams) -> Result<AnomalyFilter, String> {
    if let Some(s) = &p.min_severity
        && !SEVERITIES.contains(&s.as_str())
    {
        return Err(format!(
            "min_severity must be one of {}, not {s:?}",
            SEVERITIES.join(", ")
        ));
    }
    let max = state.settings.serve.max_rows;
    let limit = p.limit.unwrap_or(100);
    if !(1..=max).contains(&limit) {
        return Err(format!("limit must be between 1 and {max}, not {limit}"));
    }
    Ok(AnomalyFilter {
        source: p.source,
        since: p.since.as_deref().map(instant).transpose()?,
        until: p.until.as_deref().map(instant).transpose()?,
        detector: p.detector,
        min_severity: p.min_severity,
        incident_id: None,
        anomaly_id: None,
        limit,
    })
}

/// An instant as RFC 3339 (`2026-11-20T14:05:00Z`) or a date (its midnight, UTC).
fn instant(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| {
            format!("{text:?} is neither RFC 3339 (2026-11-20T14:05:00Z) nor a date (2026-11-20)")
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentParams {
    source: Option<String>,
    status: Option<String>,
}

async fn incidents(
    State(state): State<Arc<Service>>,
    params: Result<Query<IncidentParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let started = Instant::now();
    let response = match params {
        Err(e) => error(StatusCode::BAD_REQUEST, e.body_text()),
        Ok(Query(p)) => match p.status.as_deref() {
            Some(s) if !["open", "acknowledged", "closed"].contains(&s) => error(
                StatusCode::BAD_REQUEST,
                format!("status must be open, acknowledged or closed, not {s:?}"),
            ),
            _ => {
                let max = state.settings.serve.max_rows;
                let rows = state
                    .db
                    .call(move |db| {
                        db.incidents_matching(p.source.as_deref(), p.status.as_deref(), None, max)
                    })
                    .await;
                match rows {
                    Ok(rows) => Json(json!({ "incidents": rows })).into_response(),
                    Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
                }
            }
        },
    };
    finish(&state, "incidents", started, response)
}

#[derive(Debug, Deserialize)]
struct FeedbackBody {
    /// `normal` (a false alarm) or `anomaly` (confirmed).
    verdict: String,
    /// Who gives it, without tokens (default [`LOCAL_CALLER`]); with a token, the token's
    /// name is recorded.
    by: Option<String>,
    note: Option<String>,
}

/// Who a verdict sent without a token and without `by` is recorded as given by.
const LOCAL_CALLER: &str = "local (HTTP)";

/// Longest `by` and `note` of a verdict, in characters.
const MAX_BY: usize = 100;
const MAX_NOTE: usize = 2000;

/// `POST /v1/anomalies/{id}/feedback`: the same verdict as `loglake anomalies mark`.
async fn feedback(
    State(state): State<Arc<Service>>,
    Path(id): Path<String>,
    Extension(caller): Extension<auth::Caller>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let response = match verdict_of(&caller, &headers, body) {
        Err((status, message)) => error(status, message),
        Ok((word, verdict)) => {
            let marked = {
                let word = word.clone();
                state
                    .db
                    .call(move |db| db.mark_anomaly(&id, &word, &verdict))
                    .await
            };
            match marked {
                Ok(m) => Json(json!({
                    "verdict": word,
                    "source": m.source,
                    "detector": m.detector,
                    "granularity": m.granularity,
                    "entity_key": m.entity_key,
                }))
                .into_response(),
                Err(e) if e.is::<crate::db::feedback::NoSuchAnomaly>() => {
                    error(StatusCode::NOT_FOUND, format!("{e:#}"))
                }
                Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
            }
        }
    };
    finish(&state, "feedback", started, response)
}

/// A verdict request read and checked: its word and who gives it, or the client's mistake.
fn verdict_of(
    caller: &auth::Caller,
    headers: &axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(String, crate::db::feedback::Verdict), (StatusCode, String)> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a verdict is JSON: send Content-Type: application/json".into(),
        ));
    }
    let body = body.map_err(|e| (e.status(), e.body_text()))?;
    let b: FeedbackBody = serde_json::from_slice(&body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("expected {{\"verdict\": \"normal\"|\"anomaly\", \"by\": \"…\", \"note\": \"…\"}}: {e}"),
        )
    })?;
    if !["normal", "anomaly"].contains(&b.verdict.as_str()) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("verdict must be normal or anomaly, not {:?}", b.verdict),
        ));
    }
    let too_long =
        |text: &Option<String>, max: usize| text.as_ref().is_some_and(|t| t.chars().count() > max);
    if too_long(&b.by, MAX_BY) || too_long(&b.note, MAX_NOTE) {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("by holds at most {MAX_BY} characters and note {MAX_NOTE}"),
        ));
    }
    let by = match caller {
        auth::Caller::Token { name } => name.clone(),
        // Without tokens the service listens on loopback only, as `loglake anomalies mark`
        // runs on the machine: `by` is optional in both, and a verdict without it is
        // recorded as given locally (the command line records $USER).
        auth::Caller::Local => match b.by.as_deref().map(str::trim) {
            Some(by) if !by.is_empty() => by.to_string(),
            _ => LOCAL_CALLER.to_string(),
        },
    };
    Ok((b.verdict, crate::db::feedback::Verdict { by, note: b.note }))
}

async fn healthz(State(state): State<Arc<Service>>) -> Response {
    let started = Instant::now();
    let lake_ok = state.lake.is_initialised().unwrap_or(false);
    let db = state.db.call(|db| db.ping()).await;
    let unreadable = state.unreadable_models().await;
    let body = json!({
        "lake": if lake_ok { "ok".to_string() } else { format!("{} is not a loglake lake", state.lake.root().display()) },
        "database": match &db { Ok(()) => "ok".to_string(), Err(e) => format!("{e:#}") },
        "models": if unreadable.is_empty() { "ok".to_string() } else {
            format!("{} model version(s) do not read and are skipped: {}", unreadable.len(),
                unreadable.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))
        },
    });
    let status = if lake_ok && db.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    finish(
        &state,
        "healthz",
        started,
        (status, Json(body)).into_response(),
    )
}

async fn metrics(State(state): State<Arc<Service>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

type DbJob = Box<dyn FnOnce(&Database) + Send>;

/// One thread that owns the database connection pool and runs queries sent to it in turn.
struct DbThread {
    jobs: Mutex<std::sync::mpsc::Sender<DbJob>>,
}

impl DbThread {
    fn start(db: Database) -> Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<DbJob>();
        std::thread::Builder::new()
            .name("loglake-db".into())
            .spawn(move || {
                for job in queue {
                    job(&db);
                }
                db.close();
            })
            .context("starting the database thread")?;
        Ok(Self {
            jobs: Mutex::new(jobs),
        })
    }

    async fn call<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: DbJob = Box::new(move |db| {
            let _ = reply.send(query(db));
        });
        self.jobs
            .lock()
            .expect("database queue lock")
            .send(job)
            .map_err(|_| anyhow::anyhow!("the database thread has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the database thread dropped the query"))?
    }
}
