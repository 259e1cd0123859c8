//! The anomalies `generate` injects into a day, each a method of the day being written: its
//! window anomalies (a volume spike and an error burst, planned before the traffic that
//! carries them), broken and slow sessions, never-seen messages and a value out of range.
//! Each draws from the day's random stream in a fixed order, so a seed writes the same logs.

use std::fmt::Write as _;

use chrono::NaiveDate;
use rand::Rng;

use super::{
    DEBUG, Day, ERROR, INFO, Label, NEVER_SEEN, NEVER_SEEN_SUBSYSTEMS, SERVICE_WEIGHT, SERVICES,
    rfc3339, seasonality,
};

/// Where and when a day's window anomalies happen.
pub(super) struct WindowPlan {
    spike_service: usize,
    spike_start: i64,
    burst_service: usize,
    burst_start: i64,
}

impl Day<'_> {
    /// Plan the day's volume spike (15 minutes) and error burst (10 minutes), and label them.
    pub(super) fn plan_window_anomalies(&mut self, day_start: i64, file_name: &str) -> WindowPlan {
        let spike_service = self.rng.gen_range(0..SERVICES.len());
        let spike_start = self.rng.gen_range(60..(22 * 60)) as i64;
        let burst_service =
            (spike_service + self.rng.gen_range(1..SERVICES.len())) % SERVICES.len();
        let burst_start = self.rng.gen_range(60..(22 * 60)) as i64;
        self.labels.push(Label {
            kind: "volume_spike".into(),
            granularity: "window".into(),
            service: SERVICES[spike_service].into(),
            start: rfc3339(day_start + spike_start * 60_000),
            end: rfc3339(day_start + (spike_start + 15) * 60_000),
            session_key: None,
            file: Some(file_name.to_string()),
            line: None,
        });
        self.labels.push(Label {
            kind: "error_burst".into(),
            granularity: "window".into(),
            service: SERVICES[burst_service].into(),
            start: rfc3339(day_start + burst_start * 60_000),
            end: rfc3339(day_start + (burst_start + 10) * 60_000),
            session_key: None,
            file: Some(file_name.to_string()),
            line: None,
        });
        WindowPlan {
            spike_service,
            spike_start,
            burst_service,
            burst_start,
        }
    }

    /// One minute of every service's traffic: requests by the daily and weekly curve, the
    /// background (health checks, GC pauses, rare upstream timeouts), and the planned spike
    /// and burst where they fall.
    pub(super) fn traffic_minute(
        &mut self,
        date: NaiveDate,
        day_start: i64,
        minute: u32,
        requests_per_minute: f64,
        plan: &WindowPlan,
    ) {
        let minute_start = day_start + minute as i64 * 60_000;
        let season = seasonality(date, minute);
        for (s, weight) in SERVICE_WEIGHT.iter().enumerate() {
            let mut rate = requests_per_minute * weight * season;
            let m = minute as i64;
            if s == plan.spike_service && m >= plan.spike_start && m < plan.spike_start + 15 {
                rate *= 8.0;
            }
            let n = self.poisson(rate);
            for _ in 0..n {
                let at = minute_start + self.rng.gen_range(0..60_000);
                self.request(s, at, false, 1.0);
            }
            // Background: a health check a minute, GC pauses, rare upstream timeouts.
            let at = minute_start + self.rng.gen_range(0..60_000);
            let latency = self.rng.gen_range(1..20);
            self.push(
                at,
                s,
                DEBUG,
                format!("health check ok latency_ms={latency}"),
            );
            if self.rng.gen_bool(0.2) {
                let at = minute_start + self.rng.gen_range(0..60_000);
                let (pause, heap) = (self.rng.gen_range(5..120), self.rng.gen_range(200..2000));
                self.push(
                    at,
                    s,
                    INFO,
                    format!("gc pause {pause} ms heap_used={heap}MB"),
                );
            }
            if self.rng.gen_bool(0.02) {
                let at = minute_start + self.rng.gen_range(0..60_000);
                let (other, after) = (
                    SERVICES[self.rng.gen_range(0..SERVICES.len())],
                    self.rng.gen_range(1000..5000),
                );
                self.push(
                    at,
                    s,
                    ERROR,
                    format!("upstream timeout calling {other} after {after} ms"),
                );
            }
            if s == plan.burst_service && m >= plan.burst_start && m < plan.burst_start + 10 {
                for _ in 0..self.poisson(30.0) {
                    let at = minute_start + self.rng.gen_range(0..60_000);
                    let ip = self.ip();
                    let retry = self.rng.gen_range(1..6);
                    self.push(
                        at,
                        s,
                        ERROR,
                        format!("database connection refused host={ip} pool=primary retry={retry}"),
                    );
                }
            }
        }
    }

    /// Session anomalies: three broken sessions and three latency outliers.
    pub(super) fn session_anomalies(&mut self, day_start: i64, file_name: &str) {
        for kind in ["broken_session", "latency_outlier"] {
            for _ in 0..3 {
                let s = self.rng.gen_range(0..SERVICES.len());
                let at = day_start
                    + self.rng.gen_range(30..(23 * 60)) as i64 * 60_000
                    + self.rng.gen_range(0..60_000);
                let (broken, stretch) = if kind == "broken_session" {
                    (true, 1.0)
                } else {
                    (false, self.rng.gen_range(500.0..1500.0))
                };
                let before = self.lines.len();
                let req = self.request(s, at, broken, stretch);
                let end = self.lines[before..]
                    .iter()
                    .map(|l| l.ts_ms)
                    .max()
                    .unwrap_or(at);
                self.labels.push(Label {
                    kind: kind.into(),
                    granularity: "session".into(),
                    service: SERVICES[s].into(),
                    start: rfc3339(at),
                    end: rfc3339(end + 1),
                    session_key: Some(req),
                    file: Some(file_name.to_string()),
                    line: None,
                });
                if kind == "latency_outlier" {
                    // Its completion line reports the 15–60 s duration: an event whose value
                    // is out of range, whatever the session around it.
                    let completed = self.lines.len() - 1;
                    self.label_line(completed, "out_of_range", file_name);
                }
            }
        }
    }

    /// Never-seen messages: two single lines.
    pub(super) fn never_seen(&mut self, day_start: i64, file_name: &str) {
        for k in 0..2 {
            let s = self.rng.gen_range(0..SERVICES.len());
            let at = day_start
                + self.rng.gen_range(30..(23 * 60)) as i64 * 60_000
                + self.rng.gen_range(0..60_000);
            let j = self.day_index as usize * 2 + k;
            let template = NEVER_SEEN[j % NEVER_SEEN.len()];
            let subsystem =
                NEVER_SEEN_SUBSYSTEMS[(j / NEVER_SEEN.len()) % NEVER_SEEN_SUBSYSTEMS.len()];
            let mut text = format!("{subsystem}: ");
            let mut rest = template;
            while let Some(pos) = rest.find('{') {
                text.push_str(&rest[..pos]);
                let close = rest[pos..]
                    .find('}')
                    .map(|c| pos + c)
                    .unwrap_or(rest.len() - 1);
                match &rest[pos..=close] {
                    "{h}" => {
                        write!(text, "{:012x}", self.rng.r#gen::<u64>() & 0xffff_ffff_ffff).unwrap()
                    }
                    _ => write!(text, "{}", self.rng.gen_range(2..99999)).unwrap(),
                }
                rest = &rest[close + 1..];
            }
            text.push_str(rest);
            let idx = self.push(at, s, ERROR, text);
            self.label_line(idx, "never_seen", file_name);
        }
    }

    /// A value out of range: a usual message reporting a value far beyond its usual one
    /// (health checks take 1–19 ms, GC pauses 5–119 ms).
    pub(super) fn value_out_of_range(&mut self, day_start: i64, file_name: &str) {
        let s = self.rng.gen_range(0..SERVICES.len());
        let at = day_start
            + self.rng.gen_range(30..(23 * 60)) as i64 * 60_000
            + self.rng.gen_range(0..60_000);
        let (level, text) = if self.rng.gen_bool(0.5) {
            let latency = self.rng.gen_range(5_000..30_000);
            (DEBUG, format!("health check ok latency_ms={latency}"))
        } else {
            let (pause, heap) = (
                self.rng.gen_range(20_000..90_000),
                self.rng.gen_range(200..2000),
            );
            (INFO, format!("gc pause {pause} ms heap_used={heap}MB"))
        };
        let idx = self.push(at, s, level, text);
        self.label_line(idx, "out_of_range", file_name);
    }
}
