//! Keypairs, per user.

use super::*;

pub(super) fn keypair_row(r: &Row<'_>) -> rusqlite::Result<Keypair> {
    let kind: String = r.get(2)?;
    Ok(Keypair {
        user_id: UserId::new(r.get::<_, String>(0)?),
        name: r.get(1)?,
        kind: if kind == "x509" {
            KeypairType::X509
        } else {
            KeypairType::Ssh
        },
        public_key: r.get(3)?,
        fingerprint: r.get(4)?,
        created_at: parse_ts(&r.get::<_, String>(5)?)?,
    })
}

pub(super) const KEYPAIR_COLS: &str = "user_id, name, type, public_key, fingerprint, created_at";

pub fn insert_keypair(c: &Connection, k: &Keypair) -> Result<()> {
    c.execute(
        &format!("INSERT INTO keypairs ({KEYPAIR_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
        params![
            k.user_id.as_str(),
            k.name,
            k.kind.as_str(),
            k.public_key,
            k.fingerprint,
            ts(k.created_at)
        ],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

pub fn get_keypair(c: &Connection, user: &UserId, name: &str) -> Result<Option<Keypair>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {KEYPAIR_COLS} FROM keypairs WHERE user_id = ?1 AND name = ?2"
    ))?
    .query_row([user.as_str(), name], keypair_row)
    .optional()?)
}

/// A user's keypairs by name, after `marker` when given.
pub fn list_keypairs(
    c: &Connection,
    user: &UserId,
    marker: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<Keypair>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {KEYPAIR_COLS} FROM keypairs WHERE user_id = ?1 AND (?2 IS NULL OR name > ?2)
         ORDER BY name LIMIT ?3"
    ))?;
    let limit = limit.map_or(-1, |l| l as i64);
    let rows = st.query_map(params![user.as_str(), marker, limit], keypair_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn count_keypairs(c: &Connection, user: &UserId) -> Result<i64> {
    Ok(c.query_row(
        "SELECT COUNT(*) FROM keypairs WHERE user_id = ?1",
        [user.as_str()],
        |r| r.get(0),
    )?)
}

pub fn delete_keypair(c: &Connection, user: &UserId, name: &str) -> Result<bool> {
    Ok(c.execute(
        "DELETE FROM keypairs WHERE user_id = ?1 AND name = ?2",
        [user.as_str(), name],
    )? > 0)
}
