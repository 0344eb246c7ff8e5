//! Counters and histograms for what every request records, kept per worker
//! ([`crate::shard`]) and added up when scraped. prometheus-client's own types are one
//! atomic (counter) or one lock (histogram) shared by all workers: every request moved
//! their cache lines between cores, and a histogram observation took a write lock.
//!
//! Both encode exactly like prometheus-client's `Counter` and `Histogram` (same metric type,
//! same series), so swapping them changes no scraped output.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

use crate::shard::{self, Padded, SHARDS};

/// A monotonic counter with one cell per shard. Clones share the cells.
#[derive(Debug, Clone, Default)]
pub struct ShardedCounter {
    cells: Arc<[Padded<AtomicU64>; SHARDS]>,
}

impl ShardedCounter {
    pub fn inc(&self) {
        self.inc_by(1);
    }

    pub fn inc_by(&self, n: u64) {
        self.cells[shard::index()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The total over all shards.
    pub fn get(&self) -> u64 {
        self.cells
            .iter()
            .fold(0u64, |sum, c| sum.wrapping_add(c.0.load(Ordering::Relaxed)))
    }
}

impl TypedMetric for ShardedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for ShardedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Most finite bucket bounds a [`ShardedHistogram`] takes (one more bucket counts +Inf).
pub const MAX_BUCKETS: usize = 15;

/// One shard of a histogram: its own sum, count and bucket counts.
#[derive(Debug, Default)]
struct HistogramCells {
    /// `f64` bits; the shard's threads add with compare-and-swap (uncontended in practice).
    sum: AtomicU64,
    count: AtomicU64,
    buckets: [AtomicU64; MAX_BUCKETS + 1],
}

/// A histogram with fixed bucket bounds and one set of cells per shard. Clones share them.
#[derive(Debug, Clone)]
pub struct ShardedHistogram {
    bounds: Arc<[f64]>,
    cells: Arc<[Padded<HistogramCells>; SHARDS]>,
}

impl ShardedHistogram {
    /// Bounds must be increasing and at most [`MAX_BUCKETS`] (a programming error otherwise:
    /// the bounds are constants).
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> ShardedHistogram {
        let bounds: Arc<[f64]> = bounds.into_iter().collect();
        assert!(
            bounds.len() <= MAX_BUCKETS && bounds.windows(2).all(|w| w[0] < w[1]),
            "histogram bounds must be increasing and at most {MAX_BUCKETS}"
        );
        ShardedHistogram {
            bounds,
            cells: Arc::default(),
        }
    }

    pub fn observe(&self, v: f64) {
        let cells = &self.cells[shard::index()].0;
        // The first bucket whose bound is at least `v`, as prometheus-client counts; NaN and
        // values above every bound land in +Inf.
        let bucket = self
            .bounds
            .iter()
            .position(|&b| b >= v)
            .unwrap_or(self.bounds.len());
        cells.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        cells.count.fetch_add(1, Ordering::Relaxed);
        let _ = cells
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// Sum, count and per-bucket counts (not cumulative; the last bucket is +Inf), over all
    /// shards.
    pub fn get(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut sum = 0.0;
        let mut count = 0;
        let mut buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .map(|b| (b, 0))
            .collect();
        for shard in self.cells.iter() {
            let c = &shard.0;
            sum += f64::from_bits(c.sum.load(Ordering::Relaxed));
            count += c.count.load(Ordering::Relaxed);
            for (out, cell) in buckets.iter_mut().zip(c.buckets.iter()) {
                out.1 += cell.load(Ordering::Relaxed);
            }
        }
        (sum, count, buckets)
    }
}

impl TypedMetric for ShardedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ShardedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.get();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    const BOUNDS: [f64; 4] = [0.001, 0.01, 0.1, 1.0];
    const VALUES: [f64; 8] = [0.0005, 0.001, 0.002, 0.05, 0.05, 0.5, 1.0, 3.0];

    /// Records from four threads on four shards and returns the scrape, next to what
    /// prometheus-client's own types give for the same observations.
    fn scrape_both() -> (String, String) {
        let counter = ShardedCounter::default();
        let histogram = ShardedHistogram::new(BOUNDS);
        let threads: Vec<_> = (0..4)
            .map(|n| {
                let (counter, histogram) = (counter.clone(), histogram.clone());
                std::thread::spawn(move || {
                    crate::shard::pin(n);
                    counter.inc();
                    counter.inc_by(n as u64);
                    for v in VALUES {
                        histogram.observe(v);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut ours = Registry::default();
        ours.register("requests", "Requests", counter);
        ours.register("scan_seconds", "Scan time", histogram);

        let plain_counter: Counter = Counter::default();
        let plain_histogram = Histogram::new(BOUNDS);
        for n in 0..4u64 {
            plain_counter.inc();
            plain_counter.inc_by(n);
            for v in VALUES {
                plain_histogram.observe(v);
            }
        }
        let mut theirs = Registry::default();
        theirs.register("requests", "Requests", plain_counter);
        theirs.register("scan_seconds", "Scan time", plain_histogram);

        let (mut a, mut b) = (String::new(), String::new());
        encode(&mut a, &ours).unwrap();
        encode(&mut b, &theirs).unwrap();
        (a, b)
    }

    #[test]
    fn shards_add_up_and_encode_like_prometheus_client() {
        let (ours, theirs) = scrape_both();
        assert!(ours.contains("requests_total 10\n"), "{ours}");
        assert!(ours.contains("scan_seconds_count 32\n"), "{ours}");
        assert!(
            ours.contains("scan_seconds_bucket{le=\"0.001\"} 8\n"),
            "{ours}"
        );
        assert!(
            ours.contains("scan_seconds_bucket{le=\"+Inf\"} 32\n"),
            "{ours}"
        );
        // The sums add the same values in another order: equal up to rounding.
        let sum = |text: &str| -> f64 {
            let line = text
                .lines()
                .find(|l| l.starts_with("scan_seconds_sum"))
                .unwrap();
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        assert!((sum(&ours) - sum(&theirs)).abs() < 1e-9);
        let without_sum = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| !l.starts_with("scan_seconds_sum"))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(without_sum(&ours), without_sum(&theirs));
    }

    #[test]
    fn nan_counts_in_the_last_bucket_like_in_the_count() {
        let h = ShardedHistogram::new(BOUNDS);
        h.observe(f64::NAN);
        let (_, count, buckets) = h.get();
        assert_eq!(count, 1);
        assert_eq!(buckets.last(), Some(&(f64::MAX, 1)));
    }

    #[test]
    fn sums_add_across_shards() {
        let h = ShardedHistogram::new(BOUNDS);
        let threads: Vec<_> = (0..3)
            .map(|n| {
                let h = h.clone();
                std::thread::spawn(move || {
                    crate::shard::pin(n + 5);
                    for _ in 0..1000 {
                        h.observe(0.25);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (sum, count, buckets) = h.get();
        assert_eq!(count, 3000);
        assert!((sum - 750.0).abs() < 1e-9, "{sum}");
        assert_eq!(buckets[3], (1.0, 3000));
        assert_eq!(buckets[4], (f64::MAX, 0));
    }
}
