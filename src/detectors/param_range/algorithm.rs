use std::collections::BTreeMap;

use linfa::ParamGuard;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::ParamRangeError;
use super::hyperparams::{ParamRangeParams, ParamRangeValidParams};
use crate::detectors::robust::{median, quantile_sorted};

/// A masked value as a number: `45210`, `-3`, `0.013`, `85%`, or a number with a duration or
/// size unit (`35 ms`, `1007MB`), durations in milliseconds and sizes in bytes. Anything else
/// (`u64919`, `0x3037`, `10.0.0.1`, `SKU-37014`) is not a number.
pub fn numeric_value(raw: &str) -> Option<f64> {
    // Most values (ids, names, paths) fail on their first character; only a number, its
    // sign or point, or a space before it, goes on.
    let first = *raw.as_bytes().first()?;
    if first.is_ascii()
        && !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.'))
        && !char::from(first).is_whitespace()
    {
        return None;
    }
    let s = raw.trim();
    let negative = s.starts_with('-');
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, unit) = body.split_at(end);
    if !number.bytes().any(|b| b.is_ascii_digit()) || number.matches('.').count() > 1 {
        return None;
    }
    let x: f64 = number.parse().ok()?;
    let x = if negative { -x } else { x };
    Some(x * unit_scale(unit.trim())?.0)
}

/// How a value's number reads after [`numeric_value`]: `" ms"` for a duration, `" B"` for a
/// size, `""` for a plain number.
pub fn unit_of(raw: &str) -> &'static str {
    let unit = raw
        .trim()
        .trim_start_matches(['-', '+'])
        .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
        .trim();
    unit_scale(unit).map(|u| u.1).unwrap_or("")
}

/// Milliseconds or bytes per unit, and which of the two; `None` for a word that is not a unit.
fn unit_scale(unit: &str) -> Option<(f64, &'static str)> {
    const MS: &str = " ms";
    const BYTES: &str = " B";
    const KIB: f64 = 1024.0;
    Some(match unit {
        "" | "%" => (1.0, ""),
        "ns" => (1e-6, MS),
        "us" | "µs" => (1e-3, MS),
        "ms" => (1.0, MS),
        "s" | "sec" | "secs" => (1e3, MS),
        "min" => (60e3, MS),
        "h" => (3.6e6, MS),
        "B" | "bytes" => (1.0, BYTES),
        "KB" | "kB" => (1e3, BYTES),
        "MB" => (1e6, BYTES),
        "GB" => (1e9, BYTES),
        "TB" => (1e12, BYTES),
        "PB" => (1e15, BYTES),
        "KiB" => (KIB, BYTES),
        "MiB" => (KIB * KIB, BYTES),
        "GiB" => (KIB * KIB * KIB, BYTES),
        "TiB" => (KIB * KIB * KIB * KIB, BYTES),
        _ => return None,
    })
}

/// The scale values are compared on: `sign(x)·ln(1 + |x|)`, so ten times the usual is as far
/// at 10 ms as at 10 s, and zero and negative values stay in order.
fn scale(x: f64) -> f64 {
    x.signum() * x.abs().ln_1p()
}

/// One parameter position's training values, as a uniform sample of at most `sample_size`.
#[derive(Debug, Clone, Default)]
struct Sample {
    values: Vec<f64>,
    /// Training lines with a number at this position.
    numeric: u64,
    /// Training lines with anything at this position.
    seen: u64,
}

/// Collects training values line by line (reservoir sampling per position), so a month of
/// logs needs memory for the sample only.
#[derive(Debug, Clone)]
pub struct ValueSampler {
    sample_size: usize,
    rng: Xoshiro256PlusPlus,
    /// Template id → position → values over all services.
    all: Slots<Vec<Sample>>,
    /// Service → template id → position → values.
    by_service: Slots<Slots<Vec<Sample>>>,
}

/// Samples by name. hashbrown's map finds a borrowed key's entry with one hash and copies the
/// key only when it is new: with the standard map, finding and creating took two lookups, and
/// three per training line were most of the sampler's time.
type Slots<V> = hashbrown::HashMap<String, V, rustc_hash::FxBuildHasher>;

impl ValueSampler {
    /// Add one training line: its service, template and masked values in order.
    pub fn add<'v>(
        &mut self,
        service: &str,
        template: &str,
        values: impl IntoIterator<Item = &'v str>,
    ) {
        let own = self
            .by_service
            .entry_ref(service)
            .or_default()
            .entry_ref(template)
            .or_default();
        let all = self.all.entry_ref(template).or_default();
        for (position, raw) in values.into_iter().enumerate() {
            let x = numeric_value(raw);
            for samples in [&mut *all, &mut *own] {
                if samples.len() <= position {
                    samples.resize_with(position + 1, Sample::default);
                }
                samples[position].record(x, self.sample_size, &mut self.rng);
            }
        }
    }
}

impl Sample {
    /// Count a value (`None`: not a number) and keep it with the probability that leaves the
    /// kept values a uniform sample of all numeric ones (Vitter's algorithm R).
    fn record(&mut self, x: Option<f64>, size: usize, rng: &mut Xoshiro256PlusPlus) {
        self.seen += 1;
        let Some(x) = x else { return };
        self.numeric += 1;
        if self.values.len() < size {
            self.values.push(x);
        } else {
            let j = rng.gen_range(0..self.numeric) as usize;
            if j < size {
                self.values[j] = x;
            }
        }
    }
}

/// The usual range of one parameter position: median and the low and high quantiles of its
/// training values (milliseconds for durations, bytes for sizes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueRange {
    pub median: f64,
    pub low: f64,
    pub high: f64,
    /// Numeric training values at this position.
    pub values: u64,
    /// The lowest and highest values operators marked normal: the range's edges move out to
    /// them, its tail widths stay as trained (so a value far beyond them is still far out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<(f64, f64)>,
}

impl ValueRange {
    /// Tail widths beyond the range (0 inside it), the smaller of two readings:
    ///
    /// - on the log scale, where a skewed measurement's long upper tail (latencies, sizes) is
    ///   ordinary and only orders of magnitude count;
    /// - on the linear scale, where values spread evenly over a range (ports, pids, amounts)
    ///   are not "far below" at its bottom just because the log scale stretches small numbers.
    ///
    /// Taking the smaller keeps each kind of field from raising the other's false alarms; a
    /// 45 s request where 100 ms is usual is far out on both. A tail is never narrower than
    /// a factor of `min_factor` around the median.
    fn score(&self, x: f64, min_factor: f64) -> f64 {
        let (lo_edge, hi_edge) = match self.accepted {
            Some((a, b)) => (self.low.min(a), self.high.max(b)),
            None => (self.low, self.high),
        };
        // Inside the range on one scale is inside on both: most values stop here.
        if (lo_edge..=hi_edge).contains(&x) {
            return 0.0;
        }
        // Beyond an edge, in widths of the trained tail on that side.
        let tails = |t: f64, m: f64, lo: f64, hi: f64, edges: (f64, f64), min: (f64, f64)| {
            let above = (t - edges.1) / (hi - m).max(min.0);
            let below = (edges.0 - t) / (m - lo).max(min.1);
            above.max(below).max(0.0)
        };
        let width = min_factor.ln();
        let log = tails(
            scale(x),
            scale(self.median),
            scale(self.low),
            scale(self.high),
            (scale(lo_edge), scale(hi_edge)),
            (width, width),
        );
        let m = self.median.abs().max(1.0);
        let linear = tails(
            x,
            self.median,
            self.low,
            self.high,
            (lo_edge, hi_edge),
            ((min_factor - 1.0) * m, (1.0 - 1.0 / min_factor) * m),
        );
        log.min(linear)
    }
}

/// The ranges of one template's positions for one service: its own where it had enough
/// values, else all services'.
#[derive(Debug, Clone, Copy)]
pub struct LineRanges<'a> {
    own: Option<&'a [Option<ValueRange>]>,
    all: Option<&'a [Option<ValueRange>]>,
}

impl<'a> LineRanges<'a> {
    /// The range judging `position`, and whether it is the service's own.
    pub fn at(&self, position: usize) -> Option<(&'a ValueRange, bool)> {
        let at = |ranges: Option<&'a [Option<ValueRange>]>| ranges?.get(position)?.as_ref();
        at(self.own)
            .map(|r| (r, true))
            .or_else(|| at(self.all).map(|r| (r, false)))
    }
}

/// Ranges per template id and position.
pub type TemplateRanges = BTreeMap<String, Vec<Option<ValueRange>>>;

/// The fitted model: usual ranges over all services, and per service where the service had
/// enough values of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamRanges {
    pub all: TemplateRanges,
    pub by_service: BTreeMap<String, TemplateRanges>,
    /// Numeric training values over all judged positions.
    pub total_values: u64,
    params: ParamRangeValidParams,
}

impl ParamRanges {
    pub fn params() -> ParamRangeParams {
        ParamRangeParams::default()
    }

    pub fn threshold(&self) -> f64 {
        self.params.threshold
    }

    pub fn quantile(&self) -> f64 {
        self.params.quantile
    }

    /// The ranges judging the values of a `template` line of `service`; `None` when no
    /// position of it is judged.
    pub fn for_line(&self, service: &str, template: &str) -> Option<LineRanges<'_>> {
        let own = self
            .by_service
            .get(service)
            .and_then(|t| t.get(template))
            .map(Vec::as_slice);
        let all = self.all.get(template).map(Vec::as_slice);
        (own.is_some() || all.is_some()).then_some(LineRanges { own, all })
    }

    /// How far `x` lies beyond `range`, in tail widths: ≥ the threshold is anomalous.
    pub fn score(&self, range: &ValueRange, x: f64) -> f64 {
        range.score(x, self.params.min_factor)
    }

    /// Accept `x` at `position` of `template` as usual (an operator's "normal" verdict): every
    /// range judging it, all services' and each service's own, moves its edge out to it.
    pub fn accept(&mut self, template: &str, position: usize, x: f64) {
        let tables = self
            .by_service
            .values_mut()
            .chain(std::iter::once(&mut self.all));
        for table in tables {
            if let Some(Some(range)) = table.get_mut(template).and_then(|p| p.get_mut(position)) {
                let (a, b) = range.accepted.unwrap_or((x, x));
                range.accepted = Some((a.min(x), b.max(x)));
            }
        }
    }
}

impl ParamRangeValidParams {
    pub fn sampler(&self) -> ValueSampler {
        ValueSampler {
            sample_size: self.sample_size.max(1),
            rng: Xoshiro256PlusPlus::seed_from_u64(0x5eed),
            all: Slots::default(),
            by_service: Slots::default(),
        }
    }

    /// The range of each position with enough values that are mostly numbers.
    fn ranges(&self, templates: Slots<Vec<Sample>>) -> (TemplateRanges, u64, u64) {
        let (mut out, mut total, mut most) = (TemplateRanges::new(), 0, 0);
        for (template, samples) in templates {
            let mut any = false;
            let ranges: Vec<Option<ValueRange>> = samples
                .into_iter()
                .map(|mut s| {
                    most = most.max(s.numeric);
                    let numeric = s.numeric as f64 >= self.min_numeric_share * s.seen as f64;
                    if s.numeric < self.min_values() || !numeric {
                        return None;
                    }
                    s.values.sort_unstable_by(f64::total_cmp);
                    let distinct = 1 + s.values.windows(2).filter(|w| w[0] != w[1]).count();
                    if distinct < self.min_distinct {
                        return None;
                    }
                    total += s.numeric;
                    any = true;
                    Some(ValueRange {
                        median: median(&s.values),
                        low: quantile_sorted(&s.values, 1.0 - self.quantile),
                        high: quantile_sorted(&s.values, self.quantile),
                        values: s.numeric,
                        accepted: None,
                    })
                })
                .collect();
            if any {
                out.insert(template, ranges);
            }
        }
        (out, total, most)
    }

    pub fn fit(&self, sampler: ValueSampler) -> Result<ParamRanges, ParamRangeError> {
        let (all, total_values, most) = self.ranges(sampler.all);
        if all.is_empty() {
            return Err(ParamRangeError::TooFewValues {
                got: most,
                need: self.min_values(),
            });
        }
        let by_service = sampler
            .by_service
            .into_iter()
            .map(|(service, templates)| (service, self.ranges(templates).0))
            .filter(|(_, ranges)| !ranges.is_empty())
            .collect();
        Ok(ParamRanges {
            all,
            by_service,
            total_values,
            params: self.clone(),
        })
    }
}

impl ParamRangeParams {
    pub fn sampler(&self) -> Result<ValueSampler, ParamRangeError> {
        Ok(self.check_ref()?.sampler())
    }

    pub fn fit(&self, sampler: ValueSampler) -> Result<ParamRanges, ParamRangeError> {
        self.check_ref()?.fit(sampler)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_with_units_are_read_and_identifiers_are_not() {
        assert_eq!(numeric_value("45210"), Some(45210.0));
        assert_eq!(numeric_value("-3"), Some(-3.0));
        assert_eq!(numeric_value("0.013"), Some(0.013));
        assert_eq!(numeric_value("35 ms"), Some(35.0));
        assert_eq!(numeric_value("2 s"), Some(2000.0));
        assert_eq!(numeric_value("1007MB"), Some(1.007e9));
        assert_eq!(numeric_value("4 KiB"), Some(4096.0));
        assert_eq!(numeric_value("85%"), Some(85.0));
        // Spaces around a number, ASCII or not, are trimmed before it is read.
        assert_eq!(numeric_value(" 12 "), Some(12.0));
        assert_eq!(numeric_value("\u{a0}7"), Some(7.0));
        assert_eq!(numeric_value(".5"), Some(0.5));
        assert_eq!(numeric_value("+2"), Some(2.0));
        assert_eq!(
            (
                unit_of("35 ms"),
                unit_of("2 s"),
                unit_of("1007MB"),
                unit_of("12")
            ),
            (" ms", " ms", " B", "")
        );
        for id in [
            "u64919",
            "0x303744aa",
            "10.0.0.1",
            "SKU-37014",
            "pa1-000001",
            "blk_-42",
            "",
            ".",
        ] {
            assert_eq!(numeric_value(id), None, "{id}");
        }
    }

    /// Deterministic spread: request durations around 100 ms (a factor of ~3 either way), a
    /// TTL a few seconds either side of an hour, a user id, a port drawn from the whole range
    /// and a node id that is one of three numbers.
    fn training(n: usize, service: &str, typical_ms: f64, sampler: &mut ValueSampler) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        for _ in 0..n {
            let z: f64 = (0..6).map(|_| rng.r#gen::<f64>()).sum::<f64>() - 3.0;
            let ms = (typical_ms * (0.8 * z).exp()).round().to_string();
            let ttl = rng.gen_range(3595..3605).to_string();
            let user = format!("u{}", rng.gen_range(10_000..99_999));
            let port = rng.gen_range(1024..65_536).to_string();
            let node = ["188978561024", "2", "188978561024"][rng.gen_range(0..3)];
            sampler.add(
                service,
                "t",
                [
                    ms.as_str(),
                    ttl.as_str(),
                    user.as_str(),
                    port.as_str(),
                    node,
                ],
            );
        }
    }

    fn fitted() -> ParamRanges {
        let params = ParamRanges::params();
        let mut sampler = params.sampler().unwrap();
        training(5_000, "api", 100.0, &mut sampler);
        training(5_000, "batch", 10_000.0, &mut sampler);
        params.fit(sampler).unwrap()
    }

    fn range<'a>(
        model: &'a ParamRanges,
        service: &str,
        position: usize,
    ) -> Option<(&'a ValueRange, bool)> {
        model.for_line(service, "t")?.at(position)
    }

    fn score(model: &ParamRanges, service: &str, position: usize, raw: &str) -> f64 {
        let (range, _) = range(model, service, position).unwrap();
        model.score(range, numeric_value(raw).unwrap())
    }

    #[test]
    fn a_value_marked_normal_widens_its_range() {
        let mut model = fitted();
        let t = model.threshold();
        assert!(score(&model, "api", 0, "45000") >= t);
        model.accept("t", 0, 45_000.0);
        assert!(score(&model, "api", 0, "45000") < t);
        assert!(
            score(&model, "api", 0, "30000") < t,
            "smaller values on that side too"
        );
        assert!(
            score(&model, "api", 0, "4500000") >= t,
            "not everything beyond it"
        );
    }

    #[test]
    fn values_far_outside_their_range_are_flagged_and_usual_ones_are_not() {
        let model = fitted();
        let t = model.threshold();
        // Durations: the usual spread passes, 45 s on the api is far out; the floor of a
        // skewed measurement (0 ms) is no alarm.
        for usual in ["100", "30", "400", "0"] {
            assert!(score(&model, "api", 0, usual) < t, "{usual}");
        }
        assert!(score(&model, "api", 0, "45000") >= t);
        // Per service: 10 s is the batch service's normal, the api's anomaly.
        assert!(score(&model, "batch", 0, "10000") < t);
        assert!(score(&model, "api", 0, "10000") >= t);
        assert!(
            range(&model, "api", 0).unwrap().1,
            "the api has its own range"
        );
        // A near-constant: out of range a factor of 2 per tail width away — beyond about 2.8
        // times its value, or under about a quarter of it — not just off it.
        for near in ["3610", "7300", "1750", "1000"] {
            assert!(score(&model, "api", 1, near) < t, "{near}");
        }
        for far in ["12000", "800", "0"] {
            assert!(score(&model, "api", 1, far) >= t, "{far}");
        }
        // Identifiers: not numbers, or numbers of a few values (a node id), so not judged; a
        // port anywhere in its range never flags.
        assert!(range(&model, "api", 2).is_none());
        assert!(range(&model, "api", 4).is_none());
        for port in ["1", "1024", "65535", "99999"] {
            assert!(score(&model, "api", 3, port) < t, "{port}");
        }
        // A service never seen in training is judged against all services.
        assert_eq!(range(&model, "new", 0).map(|r| r.1), Some(false));
        assert!(model.for_line("api", "other").is_none());
    }

    #[test]
    fn the_sample_is_bounded_and_counts_every_value() {
        let params = ParamRanges::params().sample_size(500);
        let mut sampler = params.sampler().unwrap();
        training(3_000, "api", 100.0, &mut sampler);
        let s = &sampler.all["t"][0];
        assert_eq!((s.values.len(), s.numeric, s.seen), (500, 3_000, 3_000));
        let model = params.fit(sampler).unwrap();
        assert_eq!(model.all["t"][0].as_ref().unwrap().values, 3_000);
        // The sample's median is the population's within a few percent.
        let m = model.all["t"][0].as_ref().unwrap().median;
        assert!((80.0..125.0).contains(&m), "{m}");
    }

    #[test]
    fn bad_params_and_too_few_values_are_refused() {
        assert!(matches!(
            ParamRanges::params().quantile(0.3).sampler(),
            Err(ParamRangeError::Quantile(_))
        ));
        assert!(matches!(
            ParamRanges::params().min_factor(1.0).sampler(),
            Err(ParamRangeError::MinFactor(_))
        ));
        let params = ParamRanges::params();
        let mut sampler = params.sampler().unwrap();
        training(50, "api", 100.0, &mut sampler);
        assert!(matches!(
            params.fit(sampler),
            Err(ParamRangeError::TooFewValues { got: 50, need: 100 })
        ));
    }
}
