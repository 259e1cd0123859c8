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

mod metrics;
pub mod scorer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
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
use crate::workspace::{Access, Workspace};
use metrics::Metrics;
use scorer::{SourceModels, Stamp};

/// How often, at most, a source's model folders are checked for a newer version.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// Serve until SIGTERM or Ctrl-C, on `listen` (or `[serve] listen`).
pub fn run(settings: Settings, listen: Option<String>) -> Result<()> {
    let listen = listen.unwrap_or_else(|| settings.serve.listen.clone());
    let Workspace { lake, db, .. } = Workspace::open(&settings, Access::Serve)?;
    let db = DbThread::start(db.expect("serving connects the database"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    let max_body = settings.serve.max_body_bytes;
    let state = Arc::new(Service {
        settings,
        lake,
        db,
        sources: Mutex::new(HashMap::new()),
        metrics: Metrics::default(),
    });
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| {
                format!("listening on {listen} (is the port taken? set --listen or [serve] listen)")
            })?;
        let addr = listener.local_addr()?;
        // On stdout, for whoever started the service (and tests, which ask for port 0).
        println!("serve: listening on http://{addr}");
        tracing::info!(%addr, "serving");
        axum::serve(listener, router(state, max_body))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving HTTP")?;
        tracing::info!("stopped");
        Ok(())
    })
}

fn router(state: Arc<Service>, max_body: usize) -> Router {
    Router::new()
        .route("/v1/sources/{source}/score", post(score))
        .route("/v1/anomalies", get(anomalies))
        .route("/v1/incidents", get(incidents))
        .route("/v1/anomalies/{id}/feedback", post(feedback))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

struct Service {
    settings: Settings,
    lake: Lake,
    db: DbThread,
    /// Loaded sources, with when their stamp was last checked.
    sources: Mutex<HashMap<String, (Arc<SourceModels>, Instant)>>,
    metrics: Metrics,
}

impl Service {
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
    let response = match body {
        Err(rejection) => error(rejection.status(), rejection.body_text()),
        Ok(body) => {
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
                    let detectors: Vec<&str> =
                        answer.anomalies.iter().map(|a| a.detector.as_str()).collect();
                    state.metrics.scored(
                        &answer.source,
                        answer.lines,
                        answer.quarantined,
                        &detectors,
                    );
                    Json(answer).into_response()
                }
                Ok(Ok(None)) => error(
                    StatusCode::NOT_FOUND,
                    "no event models for this source: run 04-train for it first (or check the name)".into(),
                ),
                Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("scoring failed: {e}")),
            }
        }
    };
    finish(&state, "score", started, response)
}

#[derive(Debug, Deserialize)]
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
    by: String,
    note: Option<String>,
}

/// `POST /v1/anomalies/{id}/feedback`: the same verdict as `loglake anomalies mark`.
async fn feedback(
    State(state): State<Arc<Service>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    // Any content type (curl -d sends a form type): the body is read as JSON.
    let body = body.map_err(|e| (e.status(), e.body_text())).and_then(|b| {
        serde_json::from_slice::<FeedbackBody>(&b).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("expected {{\"verdict\": \"normal\"|\"anomaly\", \"by\": \"…\", \"note\": \"…\"}}: {e}"),
            )
        })
    });
    let response = match body {
        Err((status, message)) => error(status, message),
        Ok(b) if !["normal", "anomaly"].contains(&b.verdict.as_str()) => error(
            StatusCode::BAD_REQUEST,
            format!("verdict must be normal or anomaly, not {:?}", b.verdict),
        ),
        Ok(b) => {
            let verdict = crate::db::feedback::Verdict {
                by: b.by,
                note: b.note,
            };
            let word = b.verdict.clone();
            let marked = state
                .db
                .call(move |db| db.mark_anomaly(&id, &word, &verdict))
                .await;
            match marked {
                Ok(m) => Json(json!({
                    "verdict": b.verdict,
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

async fn healthz(State(state): State<Arc<Service>>) -> Response {
    let started = Instant::now();
    let lake_ok = state.lake.is_initialised().unwrap_or(false);
    let db = state.db.call(|db| db.ping()).await;
    let body = json!({
        "lake": if lake_ok { "ok".to_string() } else { format!("{} is not a loglake lake", state.lake.root().display()) },
        "database": match &db { Ok(()) => "ok".to_string(), Err(e) => format!("{e:#}") },
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
