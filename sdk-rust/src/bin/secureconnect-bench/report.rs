//! Measurements and the one-line result a scenario prints.

use std::{
    fmt,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

/// Microseconds since the run began: the clock senders stamp and receivers read.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Self {
        Self(Instant::now())
    }

    pub fn now_us(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// Deliveries and their send→deliver latencies.
#[derive(Default)]
pub struct Deliveries {
    count: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

impl Deliveries {
    pub fn record(&self, sent_us: u64, now_us: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut latencies) = self.latencies_us.lock() {
            latencies.push(now_us.saturating_sub(sent_us));
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// p50, p99 and max latency, in ms.
    pub fn percentiles_ms(&self) -> [f64; 3] {
        let mut samples = self
            .latencies_us
            .lock()
            .map(|latencies| latencies.clone())
            .unwrap_or_default();
        percentiles_ms(&mut samples)
    }
}

/// p50, p99 and max of `samples` (µs), in ms (NaN when empty).
pub fn percentiles_ms(samples: &mut [u64]) -> [f64; 3] {
    samples.sort_unstable();
    [0.50, 0.99, 1.0].map(|p| {
        if samples.is_empty() {
            return f64::NAN;
        }
        let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[index] as f64 / 1000.0
    })
}

/// `result scenario=… target=… key=value…`: one line, for people and for
/// `deploy/bench/compare.sh`.
pub struct Result {
    fields: Vec<(String, String)>,
}

impl Result {
    pub fn new(scenario: &str, target: &str) -> Self {
        Self {
            fields: vec![
                ("scenario".to_owned(), scenario.to_owned()),
                ("target".to_owned(), target.to_owned()),
            ],
        }
    }

    pub fn with(mut self, key: impl Into<String>, value: impl fmt::Display) -> Self {
        self.fields.push((key.into(), value.to_string()));
        self
    }

    /// A float with `decimals` places.
    pub fn with_f(self, key: impl Into<String>, value: f64, decimals: usize) -> Self {
        self.with(key, format!("{value:.decimals$}"))
    }
}

impl fmt::Display for Result {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("result")?;
        for (key, value) in &self.fields {
            write!(f, " {key}={value}")?;
        }
        Ok(())
    }
}
