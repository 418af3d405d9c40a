//! Rate limiting of failed logins, per user.
//!
//! After `threshold` consecutive failures a user's logins are refused for a back-off period
//! that doubles with each further failure, up to `max_backoff`. The lock is always temporary:
//! once the period has passed the right password works again and clears the count. The state
//! is in memory only; a restart forgives everyone, which is the safe direction.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use model::UserId;

#[derive(Clone, Debug)]
pub struct LockoutConfig {
    /// Consecutive failures before logins are refused for a while.
    pub threshold: u32,
    /// The first refusal period; each further failure doubles it.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self {
            threshold: 5,
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
        }
    }
}

struct Failures {
    count: u32,
    last: Instant,
}

pub(crate) struct Lockout {
    cfg: LockoutConfig,
    /// Failure counts by user. A std mutex: held only for a map lookup, never across `.await`.
    failures: Mutex<HashMap<UserId, Failures>>,
}

impl Lockout {
    pub fn new(cfg: LockoutConfig) -> Self {
        Self {
            cfg,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// How long the user must still wait before a login is considered, if at all.
    pub fn locked_for(&self, user: &UserId, now: Instant) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let f = map.get(user)?;
        if f.count < self.cfg.threshold {
            return None;
        }
        let exp = (f.count - self.cfg.threshold).min(16);
        let backoff = self
            .cfg
            .base_backoff
            .saturating_mul(1 << exp)
            .min(self.cfg.max_backoff);
        let until = f.last + backoff;
        (now < until).then(|| until - now)
    }

    pub fn failed(&self, user: &UserId, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let f = map.entry(user.clone()).or_insert(Failures {
            count: 0,
            last: now,
        });
        f.count = f.count.saturating_add(1);
        f.last = now;
    }

    pub fn succeeded(&self, user: &UserId) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_threshold_and_releases_after_backoff() {
        let l = Lockout::new(LockoutConfig {
            threshold: 3,
            base_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(25),
        });
        let u = UserId::new("u");
        let t0 = Instant::now();
        for _ in 0..2 {
            l.failed(&u, t0);
        }
        assert_eq!(l.locked_for(&u, t0), None);
        l.failed(&u, t0);
        assert_eq!(l.locked_for(&u, t0), Some(Duration::from_secs(10)));
        assert_eq!(l.locked_for(&u, t0 + Duration::from_secs(10)), None);
        // Each further failure doubles the wait, up to the cap.
        l.failed(&u, t0);
        assert_eq!(l.locked_for(&u, t0), Some(Duration::from_secs(20)));
        l.failed(&u, t0);
        assert_eq!(l.locked_for(&u, t0), Some(Duration::from_secs(25)));
        l.succeeded(&u);
        assert_eq!(l.locked_for(&u, t0), None);
    }
}
