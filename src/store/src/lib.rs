//! The one place that speaks SQL.
//!
//! onebox keeps all of its state in one SQLite database in WAL mode. There is exactly one writer
//! connection, guarded by a mutex: every write runs as one transaction on it, so checks made
//! inside a write (uniqueness, quotas) cannot race with another write. Reads use a small pool of
//! separate connections, which WAL lets run beside the writer.
//!
//! rusqlite is blocking, so [`Store::read`] and [`Store::write`] run their closures on tokio's
//! blocking threads and never on the async executor.

pub mod baremetal;
pub mod compute;
pub mod id_ranges;
pub mod identity;
pub mod image;
mod migrations;
pub mod network;
pub mod operator;
mod query_columns;
pub mod stats;
pub mod volume;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::OpenFlags;

pub use migrations::{LATEST_VERSION, pending};
pub use rusqlite::{Connection, Transaction};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A uniqueness or foreign-key constraint refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database is at schema version {found}, newer than this onebox ({known})")]
    TooNew { found: i64, known: i64 },
    #[error("blocking task failed: {0}")]
    Join(String),
    #[error("database lock poisoned")]
    Poisoned,
    /// A caller's own error, raised inside a transaction to roll it back (see [`abort`]).
    #[error("transaction aborted")]
    Abort(Box<dyn std::any::Any + Send + Sync>),
}

/// Rolls back the transaction being written and hands `e` back to the caller of
/// [`Store::write`], which gets it out with `Error::Abort` and a downcast.
pub fn abort<E: Send + Sync + 'static>(e: E) -> Error {
    Error::Abort(Box::new(e))
}

impl Error {
    /// Maps a constraint violation to [`Error::Conflict`] and leaves every other error alone.
    pub fn from_write(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, msg)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Error::Conflict(msg.clone().unwrap_or_else(|| "constraint violation".into()))
            }
            _ => Error::Sqlite(e),
        }
    }

    /// The message of a [`Error::Conflict`] (the caller's to answer, as a 409); `None` for
    /// every other error, which is the server's.
    pub fn conflict(&self) -> Option<&str> {
        match self {
            Error::Conflict(m) => Some(m),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How many idle read connections are kept open.
const READ_POOL: usize = 4;

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// The only connection that writes. Guarded by a std mutex: it is held only inside a
    /// blocking closure, never across an `.await`.
    writer: Mutex<Connection>,
    /// Idle read connections; `None` for an in-memory database, where reads use the writer.
    readers: Option<Mutex<Vec<Connection>>>,
    path: Option<PathBuf>,
    /// Set by the writer's update hook when a row of an identity table changes.
    identity_dirty: Arc<AtomicBool>,
    /// Bumped after every committed write that changed an identity table.
    identity_epoch: AtomicU64,
}

/// The tables whose rows decide what a token grants: a change to any of them makes every
/// answer derived from them (a cached token validation) stale.
const IDENTITY_TABLES: &[&str] = &[
    "domains",
    "projects",
    "users",
    "roles",
    "implied_roles",
    "role_assignments",
    "tokens",
];

/// Watches the writer connection for changes to [`IDENTITY_TABLES`]. SQLite calls the hook
/// for every row a statement inserts, updates or deletes, foreign-key cascades included.
fn watch_identity(conn: &Connection) -> Arc<AtomicBool> {
    let dirty = Arc::new(AtomicBool::new(false));
    let flag = dirty.clone();
    conn.update_hook(Some(
        move |_: rusqlite::hooks::Action, _: &str, table: &str, _: i64| {
            if IDENTITY_TABLES.contains(&table) {
                flag.store(true, Ordering::SeqCst);
            }
        },
    ));
    dirty
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self> {
        let store = Self::open_unmigrated(path)?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens the database without touching its schema (for `onebox db` commands).
    pub fn open_unmigrated(path: &Path) -> Result<Self> {
        let writer = Connection::open(path)?;
        configure(&writer)?;
        let identity_dirty = watch_identity(&writer);
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers: Some(Mutex::new(Vec::new())),
                path: Some(path.to_owned()),
                identity_dirty,
                identity_epoch: AtomicU64::new(0),
            }),
        })
    }

    /// A private in-memory database, migrated, for tests.
    pub fn open_in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")?;
        let identity_dirty = watch_identity(&conn);
        let store = Self {
            inner: Arc::new(Inner {
                writer: Mutex::new(conn),
                readers: None,
                path: None,
                identity_dirty,
                identity_epoch: AtomicU64::new(0),
            }),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Applies every pending migration, each in its own transaction. Returns how many ran.
    pub fn migrate(&self) -> Result<usize> {
        let mut conn = self.inner.writer.lock().map_err(|_| Error::Poisoned)?;
        migrations::apply(&mut conn)
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> Result<i64> {
        let conn = self.inner.writer.lock().map_err(|_| Error::Poisoned)?;
        migrations::current(&conn)
    }

    /// Runs `f` on a read connection, on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.read(f))
            .await
            .map_err(|e| Error::Join(e.to_string()))?
    }

    /// Runs `f` inside one write transaction, on a blocking thread. The transaction commits
    /// when `f` returns `Ok` and rolls back otherwise.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.write(f))
            .await
            .map_err(|e| Error::Join(e.to_string()))?
    }

    /// The same as [`Store::write`], for callers already on a blocking thread.
    pub fn write_blocking<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.inner.write(f)
    }

    /// The same as [`Store::read`], for callers already on a blocking thread.
    pub fn read_blocking<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.inner.read(f)
    }

    /// A number that changes after every committed write to an identity table (users,
    /// projects, roles, their assignments, tokens), whoever made it. Read it before reading
    /// identity rows: whatever those rows were used to derive is still current while the
    /// epoch is unchanged.
    pub fn identity_epoch(&self) -> u64 {
        self.inner.identity_epoch.load(Ordering::SeqCst)
    }

    /// Writes a consistent copy of the live database to `dest` (SQLite's `VACUUM INTO`).
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        let conn = self.inner.writer.lock().map_err(|_| Error::Poisoned)?;
        conn.execute("VACUUM INTO ?1", [dest.to_string_lossy()])?;
        Ok(())
    }

    /// SQLite's `PRAGMA integrity_check`: `"ok"`, or the problems it found, one per line.
    pub fn integrity_check(&self) -> Result<String> {
        let conn = self.inner.writer.lock().map_err(|_| Error::Poisoned)?;
        let mut stmt = conn.prepare("PRAGMA integrity_check")?;
        let lines = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(lines.join("\n"))
    }
}

impl Inner {
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let (Some(pool), Some(path)) = (&self.readers, &self.path) else {
            let conn = self.writer.lock().map_err(|_| Error::Poisoned)?;
            return f(&conn);
        };
        let idle = pool.lock().map_err(|_| Error::Poisoned)?.pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                c
            }
        };
        let out = f(&conn);
        let mut idle = pool.lock().map_err(|_| Error::Poisoned)?;
        if idle.len() < READ_POOL {
            idle.push(conn);
        }
        out
    }

    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock().map_err(|_| Error::Poisoned)?;
        let out = (|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit().map_err(Error::from_write)?;
            Ok(out)
        })();
        // After the commit (or the rollback), still under the writer's lock: a reader that
        // saw the old epoch may have read the old rows, and its result is now out of date.
        if self.identity_dirty.swap(false, Ordering::SeqCst) {
            self.identity_epoch.fetch_add(1, Ordering::SeqCst);
        }
        out
    }
}

fn configure(conn: &Connection) -> Result<()> {
    // WAL lets readers run beside the single writer; FULL makes every commit durable across a
    // power cut as well as a kill -9.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// Timestamps are stored as RFC 3339 text with microseconds, in UTC, so that they sort.
pub fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub fn parse_ts(s: &str) -> rusqlite::Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_epoch_moves_on_identity_writes_only() {
        let store = Store::open_in_memory().expect("store");
        let e0 = store.identity_epoch();
        store
            .write_blocking(|tx| {
                tx.execute(
                    "INSERT INTO roles (id, name, description, created_at) VALUES ('r1', 'auditor', NULL, '2026-01-01T00:00:00Z')",
                    [],
                )?;
                Ok(())
            })
            .expect("role");
        let e1 = store.identity_epoch();
        assert!(e1 > e0, "an identity row written moves the epoch on");
        store
            .write_blocking(|tx| {
                tx.execute("CREATE TABLE unrelated (x INTEGER)", [])?;
                tx.execute("INSERT INTO unrelated (x) VALUES (1)", [])?;
                Ok(())
            })
            .expect("other");
        assert_eq!(store.identity_epoch(), e1, "other tables leave it alone");
        let failed: Result<()> = store.write_blocking(|tx| {
            tx.execute("DELETE FROM roles WHERE id = 'r1'", [])?;
            Err(abort("changed my mind"))
        });
        assert!(failed.is_err());
        assert!(
            store.identity_epoch() > e1,
            "a rolled-back identity write moves it on too (harmless, never stale)"
        );
    }
}
