//! Rate limits: a token bucket per key (every ingestion path), and one per
//! browser address (`POST /api/v1/browser`). Buckets live in moka caches
//! with a size bound, so a flood of distinct addresses cannot grow memory
//! without bound; a bucket idle for a whole refill period is full again,
//! so evicting it loses nothing.
//!
//! A request over its limit is refused at once (`429` with `Retry-After`),
//! never delayed: delaying would stall every key behind the one flooding.

use moka::sync::Cache;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A token bucket: `capacity` tokens, refilled evenly over `period`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// The settings the bucket was made with; a changed limit starts a
    /// fresh bucket.
    capacity: u32,
}

impl Bucket {
    fn new(capacity: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(capacity),
            at: now,
            capacity,
        }
    }

    /// Takes `cost` tokens, or says how long until they would be there.
    /// A cost above the capacity is allowed from a full bucket (a batch
    /// larger than the limit is not refused for ever); the bucket then
    /// goes into debt and refills from below zero.
    fn take(&mut self, cost: u32, period: Duration, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(self.capacity);
        let per_sec = capacity / period.as_secs_f64();
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(capacity);
        self.at = now;
        let need = f64::from(cost).min(capacity);
        if self.tokens >= need {
            self.tokens -= f64::from(cost);
            Ok(())
        } else {
            Err(Duration::from_secs_f64((need - self.tokens) / per_sec))
        }
    }
}

/// Token buckets by name (a key id, an address), bounded in number.
#[derive(Clone)]
pub struct Limiter {
    buckets: Cache<String, Arc<Mutex<Bucket>>>,
    period: Duration,
}

impl Limiter {
    /// `period` is how long an empty bucket takes to fill; at most
    /// `max_buckets` are kept (the least recently used go first).
    pub fn new(period: Duration, max_buckets: u64) -> Limiter {
        Limiter {
            buckets: Cache::builder()
                .max_capacity(max_buckets)
                // Idle for a whole period means full again: nothing lost.
                .time_to_idle(period)
                .build(),
            period,
        }
    }

    /// Takes `cost` from the bucket of `name` holding `capacity` per
    /// period; `Err(wait)` when over the limit.
    pub fn check(&self, name: &str, capacity: u32, cost: u32) -> Result<(), Duration> {
        let now = Instant::now();
        let capacity = capacity.max(1);
        let bucket = self
            .buckets
            .get_with_by_ref(name, || Arc::new(Mutex::new(Bucket::new(capacity, now))));
        let mut b = bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if b.capacity != capacity {
            *b = Bucket::new(capacity, now);
        }
        b.take(cost, self.period, now)
    }

    /// How many buckets are held (after pending evictions are done).
    pub fn len(&self) -> u64 {
        self.buckets.run_pending_tasks();
        self.buckets.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Seconds for a `Retry-After` header: at least 1, rounded up.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_capacity_then_refuses_and_refills() {
        let period = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut b = Bucket::new(6, t0);
        for _ in 0..6 {
            assert!(b.take(1, period, t0).is_ok());
        }
        let wait = b.take(1, period, t0).unwrap_err();
        assert!((9.9..=10.1).contains(&wait.as_secs_f64()), "{wait:?}");
        assert!(b.take(1, period, t0 + Duration::from_secs(10)).is_ok());
        assert!(b.take(1, period, t0 + Duration::from_secs(10)).is_err());
    }

    #[test]
    fn a_batch_above_the_capacity_passes_from_a_full_bucket_and_leaves_a_debt() {
        let period = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut b = Bucket::new(10, t0);
        assert!(b.take(25, period, t0).is_ok());
        // 15 in debt: 25 tokens' worth of time until one batch of 10 fits.
        let wait = b.take(10, period, t0).unwrap_err();
        assert!((149.0..=151.0).contains(&wait.as_secs_f64()), "{wait:?}");
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let l = Limiter::new(Duration::from_secs(60), 100);
        assert!(l.check("a", 2, 2).is_ok());
        assert!(l.check("a", 2, 1).is_err());
        assert!(l.check("b", 2, 1).is_ok());
        // A changed limit takes effect at once.
        assert!(l.check("a", 5, 1).is_ok());
    }

    /// 100k distinct addresses: the number of buckets stays at the bound.
    #[test]
    fn many_addresses_stay_bounded() {
        let l = Limiter::new(Duration::from_secs(12 * 3600), 10_000);
        for i in 0..100_000u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            let _ = l.check(&ip, 7, 1);
        }
        let n = l.len();
        assert!(n <= 10_000, "{n} buckets held");
        assert!(n > 0);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::from_millis(3001)), 4);
    }
}
