//! Latency summaries (exact percentiles from the sorted samples) and
//! duration formatting.

use std::time::Duration;

/// Latency percentiles of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub(crate) struct Summary {
    /// How many samples.
    pub(crate) count: usize,
    /// Smallest.
    pub(crate) min_ms: f64,
    /// Mean.
    pub(crate) mean_ms: f64,
    /// Median.
    pub(crate) p50_ms: f64,
    /// 90th percentile.
    pub(crate) p90_ms: f64,
    /// 99th percentile.
    pub(crate) p99_ms: f64,
    /// 99.9th percentile.
    pub(crate) p999_ms: f64,
    /// Largest.
    pub(crate) max_ms: f64,
}

impl Summary {
    /// `min … · p50 … · p90 … · p99 … · p99.9 … · max …`, each human-sized:
    /// the one way kconn prints a distribution on a line.
    pub(crate) fn percentiles(&self) -> String {
        format!(
            "min {} · p50 {} · p90 {} · p99 {} · p99.9 {} · max {}",
            human_ms(self.min_ms),
            human_ms(self.p50_ms),
            human_ms(self.p90_ms),
            human_ms(self.p99_ms),
            human_ms(self.p999_ms),
            human_ms(self.max_ms),
        )
    }

    /// Summarises `samples` (sorted in place); `None` when there are none.
    pub(crate) fn of(samples: &mut [Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let total: Duration = samples.iter().sum();
        let at = |q: f64| ms(percentile(samples, q));
        Some(Self {
            count: samples.len(),
            min_ms: ms(samples[0]),
            mean_ms: ms(total / u32::try_from(samples.len()).unwrap_or(u32::MAX)),
            p50_ms: at(50.0),
            p90_ms: at(90.0),
            p99_ms: at(99.0),
            p999_ms: at(99.9),
            max_ms: ms(samples[samples.len() - 1]),
        })
    }
}

/// The nearest-rank percentile `q` (0-100) of sorted, non-empty `samples`.
pub(crate) fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds as a float, to the microsecond (no float noise in JSON).
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// A duration for people: `0.42 ms`, `12.3 ms`, `1.50 s`.
pub(crate) fn human(d: Duration) -> String {
    let m = ms(d);
    if m < 10.0 {
        format!("{m:.2} ms")
    } else if m < 1000.0 {
        format!("{m:.1} ms")
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// A float number of milliseconds for people (see [`human`]).
pub(crate) fn human_ms(m: f64) -> String {
    human(Duration::from_secs_f64(m.max(0.0) / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = Summary::of(&mut v).unwrap();
        assert_eq!(s.count, 100);
        assert_eq!(s.min_ms, 1.0);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p90_ms, 90.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.p999_ms, 100.0);
        assert_eq!(s.max_ms, 100.0);
        assert!((s.mean_ms - 50.5).abs() < 1e-9);
        let mut one = [Duration::from_millis(7)];
        let s = Summary::of(&mut one).unwrap();
        assert_eq!(
            (s.min_ms, s.p50_ms, s.p99_ms, s.max_ms),
            (7.0, 7.0, 7.0, 7.0)
        );
        assert!(Summary::of(&mut []).is_none());
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_micros(420)), "0.42 ms");
        assert_eq!(human(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(human(Duration::from_millis(1500)), "1.50 s");
        assert_eq!(human(Duration::from_secs(10)), "10 s");
        assert_eq!(human_ms(2.5), "2.50 ms");
    }
}
