//! Rate limiting of failed logins, per account and source address.
//!
//! After `threshold` consecutive failures for one account from one source a login for that
//! account from that source is refused for a back-off period that doubles with each further
//! failure, up to `max_backoff`. The count is kept per (account, source) so a stranger
//! hammering wrong passwords from one address cannot lock the owner out: the owner, from any
//! other address, still logs in. IPv6 sources count per /64, the block one host usually has.
//!
//! The lock is always temporary: once the period has passed the right password works again
//! and clears the count. The state is in memory only; a restart forgives everyone, which is
//! the safe direction. The table is bounded: stale entries are dropped as it grows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Entries kept before stale ones are pruned.
const PRUNE_AT: usize = 16_384;
/// Entries kept at most; past it the oldest entries are forgotten.
const MAX_ENTRIES: usize = 65_536;

struct Failures {
    count: u32,
    last: Instant,
}

/// An account as the lockout knows it: its id when it exists, else the name asked for (so an
/// unknown name behaves exactly like a known one and reveals nothing).
pub(crate) type AccountKey = String;

pub(crate) struct Lockout {
    cfg: LockoutConfig,
    /// A std mutex: held only for a map operation, never across `.await`.
    failures: Mutex<Table>,
}

/// Failure counts by (account, source), and the size at which stale ones are next pruned.
struct Table {
    map: HashMap<(AccountKey, IpAddr), Failures>,
    next_prune: usize,
}

/// The address failures are counted under: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its
/// /64, an unknown source (an in-process caller) as the unspecified address.
pub(crate) fn source_key(source: Option<IpAddr>) -> IpAddr {
    match source {
        None => IpAddr::from([0u8; 4]),
        Some(IpAddr::V4(v4)) => IpAddr::V4(v4),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

impl Lockout {
    pub fn new(cfg: LockoutConfig) -> Self {
        Self {
            cfg,
            failures: Mutex::new(Table {
                map: HashMap::new(),
                next_prune: PRUNE_AT,
            }),
        }
    }

    fn backoff(&self, count: u32) -> Option<Duration> {
        if count < self.cfg.threshold {
            return None;
        }
        let exp = (count - self.cfg.threshold).min(16);
        Some(
            self.cfg
                .base_backoff
                .saturating_mul(1 << exp)
                .min(self.cfg.max_backoff),
        )
    }

    /// How long logins to `account` from `source` must still wait, if at all.
    pub fn locked_for(&self, account: &str, source: IpAddr, now: Instant) -> Option<Duration> {
        let t = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let f = t.map.get(&(account.to_owned(), source))?;
        let until = f.last + self.backoff(f.count)?;
        (now < until).then(|| until - now)
    }

    pub fn failed(&self, account: &str, source: IpAddr, now: Instant) {
        let mut t = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if t.map.len() >= t.next_prune {
            self.prune(&mut t.map, now);
            t.next_prune = (t.map.len() * 2).clamp(PRUNE_AT, MAX_ENTRIES);
        }
        let f = t
            .map
            .entry((account.to_owned(), source))
            .or_insert(Failures {
                count: 0,
                last: now,
            });
        f.count = f.count.saturating_add(1);
        f.last = now;
    }

    /// A good password from `source`: that pair starts afresh (others keep their counts).
    pub fn succeeded(&self, account: &str, source: IpAddr) {
        let mut t = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        t.map.remove(&(account.to_owned(), source));
    }

    /// Forgets every count of an account (an administrator set its password).
    pub fn forget(&self, account: &str) {
        let mut t = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        t.map.retain(|(a, _), _| a != account);
    }

    /// Drops entries whose count no longer matters: last failure older than the longest
    /// back-off. If the table is still too big, the oldest half goes.
    fn prune(&self, map: &mut HashMap<(AccountKey, IpAddr), Failures>, now: Instant) {
        let horizon = self.cfg.max_backoff.max(self.cfg.base_backoff);
        map.retain(|_, f| now.saturating_duration_since(f.last) < horizon);
        if map.len() >= MAX_ENTRIES {
            let mut ages: Vec<Instant> = map.values().map(|f| f.last).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            map.retain(|_, f| f.last > cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn locks_after_threshold_and_releases_after_backoff() {
        let l = Lockout::new(LockoutConfig {
            threshold: 3,
            base_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(25),
        });
        let t0 = Instant::now();
        for _ in 0..2 {
            l.failed("u", A, t0);
        }
        assert_eq!(l.locked_for("u", A, t0), None);
        l.failed("u", A, t0);
        assert_eq!(l.locked_for("u", A, t0), Some(Duration::from_secs(10)));
        assert_eq!(l.locked_for("u", A, t0 + Duration::from_secs(10)), None);
        // Another source is not locked.
        assert_eq!(l.locked_for("u", B, t0), None);
        // Each further failure doubles the wait, up to the cap.
        l.failed("u", A, t0);
        assert_eq!(l.locked_for("u", A, t0), Some(Duration::from_secs(20)));
        l.failed("u", A, t0);
        assert_eq!(l.locked_for("u", A, t0), Some(Duration::from_secs(25)));
        l.succeeded("u", A);
        assert_eq!(l.locked_for("u", A, t0), None);
    }

    #[test]
    fn ipv6_sources_count_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::5".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("v6");
        assert_eq!(source_key(Some(a)), source_key(Some(b)));
        let c: IpAddr = "2001:db8:1:3::5".parse().expect("v6");
        assert_ne!(source_key(Some(a)), source_key(Some(c)));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("mapped");
        assert_eq!(source_key(Some(mapped)), A);
    }

    #[test]
    fn the_table_stays_bounded() {
        let l = Lockout::new(LockoutConfig::default());
        let t0 = Instant::now();
        for i in 0..(MAX_ENTRIES as u32 + 10) {
            let ip = IpAddr::from(i.to_be_bytes());
            l.failed("u", ip, t0 + Duration::from_millis(u64::from(i)));
        }
        let n = l.failures.lock().expect("lock").map.len();
        assert!(n <= MAX_ENTRIES, "{n}");
    }
}
