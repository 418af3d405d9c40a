//! What keeps an unauthenticated client from wearing the box out: a token bucket per source
//! address in front of authentication, and a bounded queue for password hashing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// Buckets kept before full ones (sources quiet long enough) are dropped.
const PRUNE_AT: usize = 4096;
/// Buckets kept at most; a new source that finds the table still full after pruning clears
/// it (every source starts with a full bucket again) rather than being refused.
const MAX_BUCKETS: usize = 65_536;

/// A token bucket per source address (see [`crate::lockout::source_key`] for how addresses
/// are grouped): `burst` requests at once, refilled at `per_sec`.
pub(crate) struct RateLimit {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    map: HashMap<IpAddr, Bucket>,
    next_prune: usize,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    /// `per_sec` of 0 turns the limit off.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        Self {
            per_sec,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                next_prune: PRUNE_AT,
            }),
        }
    }

    /// Takes one request from `source`'s bucket, or says how long until one is there.
    pub fn admit(&self, source: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_sec <= 0.0 {
            return Ok(());
        }
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if b.map.len() >= b.next_prune {
            let (per_sec, burst) = (self.per_sec, self.burst);
            b.map.retain(|_, k| {
                k.tokens + now.saturating_duration_since(k.at).as_secs_f64() * per_sec < burst
            });
            b.next_prune = (b.map.len() * 2).clamp(PRUNE_AT, MAX_BUCKETS);
        }
        if b.map.len() >= MAX_BUCKETS && !b.map.contains_key(&source) {
            // So many sources at once: start afresh rather than refuse every new one.
            tracing::warn!(
                sources = b.map.len(),
                "token rate limit table full: cleared"
            );
            b.map.clear();
            b.next_prune = PRUNE_AT;
        }
        let k = b.map.entry(source).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.saturating_duration_since(k.at).as_secs_f64() * self.per_sec;
        k.tokens = (k.tokens + refill).min(self.burst);
        k.at = now;
        if k.tokens >= 1.0 {
            k.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - k.tokens) / self.per_sec))
    }
}

/// Bounds the password hashing work that may be pending at once: the hashing threads' work in
/// progress plus `queue` waiting. Past it a request is refused at once (503 with
/// `Retry-After`) instead of joining an unbounded queue that would hold every later login,
/// and the memory of its request, for as long as the flood lasts.
pub(crate) struct HashGate {
    pending: Arc<AtomicUsize>,
    max: usize,
}

/// Marks one pending hash; dropped when the hash has run (or will never run).
struct Pending(Arc<AtomicUsize>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashGate {
    pub fn new(queue: usize) -> Self {
        Self {
            pending: Arc::new(AtomicUsize::new(0)),
            max: hash_threads() + queue,
        }
    }

    /// Runs `f` on the hashing threads, unless too much work is already pending.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let before = self.pending.fetch_add(1, Ordering::AcqRel);
        let pending = Pending(self.pending.clone());
        if before >= self.max {
            drop(pending);
            tracing::warn!(
                pending = before,
                "password hashing queue full: request refused"
            );
            return Err(Error::Busy {
                retry_after: Duration::from_secs(1),
            });
        }
        // The marker travels with the job, so a caller that goes away (a closed connection)
        // still counts until the hash it queued has run.
        argon2_pool(move || {
            let out = f();
            drop(pending);
            out
        })
        .await
    }
}

/// How many hashing threads there are: one per CPU.
fn hash_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs password hashing work on onebox's own hashing threads, one per CPU.
///
/// Each argon2 computation takes tens of milliseconds and 19 MiB of memory by design. On the
/// shared blocking pool a burst of logins would touch many threads, and the allocator keeps
/// the memory of every thread that ever hashed (hundreds of MiB after a burst); a few
/// dedicated threads bound both the CPU and the memory that hashing can take.
async fn argon2_pool<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    type Job = Box<dyn FnOnce() + Send>;
    static POOL: std::sync::OnceLock<Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        // The receiver is shared by the workers; each holds the lock only to take one job.
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..hash_threads() {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Mutex::new(tx)
    });
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(f());
    });
    pool.lock()
        .map_err(|_| Error::Store(store::Error::Poisoned))?
        .send(job)
        .map_err(|e| Error::Store(store::Error::Join(e.to_string())))?;
    result
        .await
        .map_err(|e| Error::Store(store::Error::Join(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let r = RateLimit::new(2.0, 3);
        let a = IpAddr::from([192, 0, 2, 1]);
        let b = IpAddr::from([192, 0, 2, 2]);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(r.admit(a, t0).is_ok());
        }
        let wait = r.admit(a, t0).expect_err("empty");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // Another source has its own bucket.
        assert!(r.admit(b, t0).is_ok());
        // Half a second later one request is back.
        let t1 = t0 + Duration::from_millis(500);
        assert!(r.admit(a, t1).is_ok());
        assert!(r.admit(a, t1).is_err());
        // Off when the rate is 0.
        let off = RateLimit::new(0.0, 1);
        for _ in 0..10 {
            assert!(off.admit(a, t0).is_ok());
        }
    }

    #[test]
    fn the_bucket_table_stays_bounded_and_new_sources_are_not_refused() {
        let r = RateLimit::new(1.0, 5);
        let t0 = Instant::now();
        for i in 0..(MAX_BUCKETS as u32 + 10) {
            assert!(r.admit(IpAddr::from(i.to_be_bytes()), t0).is_ok());
        }
        let n = r.buckets.lock().expect("lock").map.len();
        assert!(n <= MAX_BUCKETS, "{n}");
    }

    #[tokio::test]
    async fn the_hash_gate_refuses_past_its_bound_and_frees_its_slots() {
        let gate = Arc::new(HashGate::new(0));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(Mutex::new(wait));
        let mut held = Vec::new();
        for _ in 0..gate.max {
            let (g, w) = (gate.clone(), wait.clone());
            held.push(tokio::spawn(async move {
                g.run(move || {
                    let _ = w.lock().map(|r| r.recv());
                })
                .await
            }));
        }
        // Every slot is taken (the jobs block until released).
        while gate.pending.load(Ordering::Acquire) < gate.max {
            tokio::task::yield_now().await;
        }
        assert!(matches!(gate.run(|| ()).await, Err(Error::Busy { .. })));
        for _ in 0..gate.max {
            release.send(()).expect("release");
        }
        for h in held {
            h.await.expect("join").expect("ran");
        }
        assert_eq!(gate.pending.load(Ordering::Acquire), 0);
        assert!(gate.run(|| 7).await.is_ok());
    }
}
