//! Request rate limits: a token bucket per key (a bank principal, a client address), kept in
//! memory, so each replica counts on its own. GCRA form: one instant per key, no floats.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `burst` requests at once, then one per `interval`; `None`: no limit.
#[derive(Clone, Default)]
pub struct RateLimiter {
    limit: Option<(Duration, u32)>,
    /// Per key, when its bucket is full again (the "theoretical arrival time").
    full_at: Arc<Mutex<HashMap<String, Instant>>>,
}

/// Keys remembered at most; beyond it, keys whose bucket is full again are forgotten.
const MAX_KEYS: usize = 100_000;

impl RateLimiter {
    /// `per_second` requests a second on average (0: unlimited), `burst` at once.
    pub fn per_second(per_second: u32, burst: u32) -> Self {
        RateLimiter {
            limit: (per_second > 0).then(|| (Duration::from_secs(1) / per_second, burst.max(1))),
            full_at: Default::default(),
        }
    }

    /// `per_minute` requests a minute on average (0: unlimited), `burst` at once.
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        RateLimiter {
            limit: (per_minute > 0).then(|| (Duration::from_secs(60) / per_minute, burst.max(1))),
            full_at: Default::default(),
        }
    }

    pub fn unlimited() -> Self {
        RateLimiter::default()
    }

    /// Takes a token for `key`; `Err(seconds)` to wait (at least 1) when there is none.
    pub fn take(&self, key: &str) -> Result<(), u64> {
        let Some((interval, burst)) = self.limit else {
            return Ok(());
        };
        let now = Instant::now();
        let Ok(mut full_at) = self.full_at.lock() else {
            return Ok(());
        };
        if full_at.len() >= MAX_KEYS {
            full_at.retain(|_, t| *t > now);
        }
        let at = full_at
            .get(key)
            .copied()
            .filter(|t| *t > now)
            .unwrap_or(now);
        // The bucket holds `burst` tokens: refused while it is `burst` intervals from full.
        let after = at + interval;
        let tolerance = interval * burst;
        if after > now + tolerance {
            let wait = after - (now + tolerance);
            return Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        }
        full_at.insert(key.to_owned(), after);
        Ok(())
    }
}

/// The limits the service applies.
#[derive(Clone, Default)]
pub struct RateLimits {
    /// Requests of each bank principal (user or bank client).
    pub bank: RateLimiter,
    /// `POST /v1/auth/token` per client address, whatever the outcome.
    pub token: RateLimiter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds_per_key() {
        let l = RateLimiter::per_second(10, 3);
        for _ in 0..3 {
            assert_eq!(l.take("a"), Ok(()));
        }
        assert_eq!(l.take("a"), Err(1));
        // Another key has its own bucket.
        assert_eq!(l.take("b"), Ok(()));
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(l.take("a"), Ok(()));
        assert_eq!(l.take("a"), Err(1));
    }

    #[test]
    fn retry_after_is_the_wait_for_the_next_token() {
        let l = RateLimiter::per_minute(2, 1);
        assert_eq!(l.take("ip"), Ok(()));
        assert_eq!(l.take("ip"), Err(30));
        assert!(RateLimiter::unlimited().take("ip").is_ok());
        assert!(RateLimiter::per_second(0, 1).take("ip").is_ok());
    }
}
