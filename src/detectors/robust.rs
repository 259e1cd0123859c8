//! Robust location and spread, shared by the detectors that need a baseline.

/// Median of already sorted values (0 for none).
pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Linear-interpolated quantile of sorted values (numpy's default); NaN for none.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Median and a robust estimate of σ: 1.4826·MAD, or, when the MAD is zero (a mostly
/// constant series), 1.2533·mean absolute deviation from the median — Iglewicz & Hoaglin's
/// fallback for the modified z-score. Sorts `values` in place.
pub fn median_and_spread(values: &mut [f64]) -> (f64, f64) {
    let (center, dev) = median_and_deviations(values);
    let mad = median(&dev);
    let spread = if mad > 0.0 {
        1.4826 * mad
    } else if dev.is_empty() {
        0.0
    } else {
        1.2533 * dev.iter().sum::<f64>() / dev.len() as f64
    };
    (center, spread)
}

/// Median and 1.4826·MAD, with no fallback: 0 when more than half the values are equal.
/// For callers that have a noise floor of their own. Sorts `values` in place.
pub fn median_and_mad(values: &mut [f64]) -> (f64, f64) {
    let (center, dev) = median_and_deviations(values);
    (center, 1.4826 * median(&dev))
}

/// The median and the sorted absolute deviations from it. Unstable sorts: values equal under
/// `total_cmp` are the same bits, so any order of them is the order a stable sort gives.
fn median_and_deviations(values: &mut [f64]) -> (f64, Vec<f64>) {
    values.sort_unstable_by(f64::total_cmp);
    let center = median(values);
    let mut dev: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
    dev.sort_unstable_by(f64::total_cmp);
    (center, dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mad_and_its_fallback() {
        let mut v = vec![10.0, 11.0, 9.0, 10.0, 12.0, 8.0, 10.0, 11.0, 9.0, 200.0];
        assert_eq!(median_and_spread(&mut v), (10.0, 1.4826));
        // MAD is zero: 1.2533 × mean |x − 0| = 1.2533 × 2/100.
        let mut v = vec![0.0; 99];
        v.push(2.0);
        let (c, s) = median_and_spread(&mut v);
        assert_eq!(c, 0.0);
        assert!((s - 1.2533 * 0.02).abs() < 1e-12);
    }
}
