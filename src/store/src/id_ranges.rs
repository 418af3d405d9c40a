//! The host uid/gid ranges of the containers' user namespaces: one range per server,
//! `size` ids from `base`, bases at or above a floor, no two alike (the table's UNIQUE
//! constraint stands behind the allocation).

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::{Error, Result};

/// The base of `server_id`'s range, allocating the lowest free one (`floor`, `floor +
/// size`, …) when it has none. Fails with [`Error::Conflict`] when every range below 2^32
/// is taken.
pub fn allocate(tx: &Transaction<'_>, server_id: &str, floor: u32, size: u32) -> Result<u32> {
    if let Some(b) = get(tx, server_id)? {
        return Ok(b);
    }
    let mut st =
        tx.prepare("SELECT base FROM container_id_ranges WHERE base >= ?1 ORDER BY base")?;
    let used = st
        .query_map([i64::from(floor)], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    let mut base = i64::from(floor);
    for u in used {
        if u > base {
            break;
        }
        if u == base {
            base += i64::from(size);
        }
    }
    if base + i64::from(size) > i64::from(u32::MAX) {
        return Err(Error::Conflict("every container id range is in use".into()));
    }
    tx.execute(
        "INSERT INTO container_id_ranges (server_id, base) VALUES (?1, ?2)",
        params![server_id, base],
    )
    .map_err(Error::from_write)?;
    Ok(base as u32)
}

/// The base of `server_id`'s range, if it has one.
pub fn get(c: &Connection, server_id: &str) -> Result<Option<u32>> {
    Ok(c.query_row(
        "SELECT base FROM container_id_ranges WHERE server_id = ?1",
        [server_id],
        |r| r.get::<_, i64>(0),
    )
    .optional()?
    .map(|b| b as u32))
}

/// Frees `server_id`'s range (nothing when it has none).
pub fn release(tx: &Transaction<'_>, server_id: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM container_id_ranges WHERE server_id = ?1",
        [server_id],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    #[test]
    fn ranges_are_distinct_kept_per_server_and_reused_when_freed() {
        let s = Store::open_in_memory().expect("store");
        let alloc = |id: &'static str| {
            s.write_blocking(move |tx| allocate(tx, id, 1 << 20, 65536))
                .expect("allocate")
        };
        let a = alloc("a");
        let b = alloc("b");
        let c = alloc("c");
        assert_eq!([a, b, c], [1 << 20, (1 << 20) + 65536, (1 << 20) + 131072]);
        assert_eq!(alloc("a"), a, "one range per server");
        s.write_blocking(|tx| release(tx, "b")).expect("release");
        assert_eq!(alloc("d"), b, "the freed range is the lowest free one");
        assert_eq!(alloc("e"), (1 << 20) + 196608);
        assert_eq!(s.read_blocking(|c| get(c, "c")).expect("get"), Some(c));
        s.write_blocking(|tx| release(tx, "c")).expect("release");
        assert_eq!(s.read_blocking(|c| get(c, "c")).expect("get"), None);
    }
}
