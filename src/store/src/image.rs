//! SQL for the image service: image records, their custom properties, tags and members.

use model::ProjectId;
use model::image::{
    ContainerFormat, DiskFormat, Image, ImageId, ImageMember, ImageStatus, MemberStatus, Visibility,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{Error, Result, parse_ts, ts};

const COLS: &str = "id, name, owner, status, visibility, protected, os_hidden, disk_format, \
    container_format, min_disk, min_ram, size, virtual_size, checksum, os_hash_algo, \
    os_hash_value, created_at, updated_at";

fn bad_enum(col: usize, v: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        format!("unknown value {v:?}").into(),
    )
}

fn parse_col<T>(r: &Row<'_>, col: usize, f: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let s: String = r.get(col)?;
    f(&s).ok_or_else(|| bad_enum(col, &s))
}

fn parse_opt<T>(r: &Row<'_>, col: usize, f: fn(&str) -> Option<T>) -> rusqlite::Result<Option<T>> {
    match r.get::<_, Option<String>>(col)? {
        None => Ok(None),
        Some(s) => f(&s).map(Some).ok_or_else(|| bad_enum(col, &s)),
    }
}

fn image_row(r: &Row<'_>) -> rusqlite::Result<Image> {
    let id: String = r.get(0)?;
    Ok(Image {
        id: ImageId::parse(&id).ok_or_else(|| bad_enum(0, &id))?,
        name: r.get(1)?,
        owner: ProjectId::new(r.get::<_, String>(2)?),
        status: parse_col(r, 3, ImageStatus::parse)?,
        visibility: parse_col(r, 4, Visibility::parse)?,
        protected: r.get(5)?,
        os_hidden: r.get(6)?,
        disk_format: parse_opt(r, 7, DiskFormat::parse)?,
        container_format: parse_opt(r, 8, ContainerFormat::parse)?,
        min_disk: r.get::<_, i64>(9)? as u64,
        min_ram: r.get::<_, i64>(10)? as u64,
        size: r.get::<_, Option<i64>>(11)?.map(|v| v as u64),
        virtual_size: r.get::<_, Option<i64>>(12)?.map(|v| v as u64),
        checksum: r.get(13)?,
        os_hash_algo: r.get(14)?,
        os_hash_value: r.get(15)?,
        created_at: parse_ts(&r.get::<_, String>(16)?)?,
        updated_at: parse_ts(&r.get::<_, String>(17)?)?,
        tags: Vec::new(),
        properties: Default::default(),
    })
}

/// Fills in the tags and properties of an image read from its row.
fn load_children(c: &Connection, img: &mut Image) -> Result<()> {
    let mut st = c.prepare_cached("SELECT tag FROM image_tags WHERE image_id = ?1 ORDER BY tag")?;
    img.tags = st
        .query_map([img.id.as_str()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut st =
        c.prepare_cached("SELECT name, value FROM image_properties WHERE image_id = ?1")?;
    img.properties = st
        .query_map([img.id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(())
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn insert_image(c: &Connection, img: &Image) -> Result<()> {
    c.execute(
        &format!(
            "INSERT INTO images ({COLS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
        ),
        params![
            img.id.as_str(),
            img.name,
            img.owner.as_str(),
            img.status.as_str(),
            img.visibility.as_str(),
            img.protected,
            img.os_hidden,
            img.disk_format.map(DiskFormat::as_str),
            img.container_format.map(ContainerFormat::as_str),
            i(img.min_disk),
            i(img.min_ram),
            img.size.map(i),
            img.virtual_size.map(i),
            img.checksum,
            img.os_hash_algo,
            img.os_hash_value,
            ts(img.created_at),
            ts(img.updated_at),
        ],
    )
    .map_err(Error::from_write)?;
    write_children(c, img)
}

fn write_children(c: &Connection, img: &Image) -> Result<()> {
    let id = img.id.as_str();
    c.execute("DELETE FROM image_tags WHERE image_id = ?1", [id])?;
    c.execute("DELETE FROM image_properties WHERE image_id = ?1", [id])?;
    let mut st = c.prepare_cached("INSERT INTO image_tags (image_id, tag) VALUES (?1, ?2)")?;
    for t in &img.tags {
        st.execute(params![id, t]).map_err(Error::from_write)?;
    }
    let mut st = c.prepare_cached(
        "INSERT INTO image_properties (image_id, name, value) VALUES (?1, ?2, ?3)",
    )?;
    for (k, v) in &img.properties {
        st.execute(params![id, k, v]).map_err(Error::from_write)?;
    }
    Ok(())
}

/// Writes every field of an existing image (and replaces its tags and properties).
pub fn update_image(c: &Connection, img: &Image) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE images SET name = ?2, owner = ?3, status = ?4, visibility = ?5, protected = ?6,
             os_hidden = ?7, disk_format = ?8, container_format = ?9, min_disk = ?10,
             min_ram = ?11, size = ?12, virtual_size = ?13, checksum = ?14, os_hash_algo = ?15,
             os_hash_value = ?16, updated_at = ?17 WHERE id = ?1",
            params![
                img.id.as_str(),
                img.name,
                img.owner.as_str(),
                img.status.as_str(),
                img.visibility.as_str(),
                img.protected,
                img.os_hidden,
                img.disk_format.map(DiskFormat::as_str),
                img.container_format.map(ContainerFormat::as_str),
                i(img.min_disk),
                i(img.min_ram),
                img.size.map(i),
                img.virtual_size.map(i),
                img.checksum,
                img.os_hash_algo,
                img.os_hash_value,
                ts(img.updated_at),
            ],
        )
        .map_err(Error::from_write)?;
    if n == 0 {
        return Ok(false);
    }
    write_children(c, img)?;
    Ok(true)
}

pub fn get_image(c: &Connection, id: &ImageId) -> Result<Option<Image>> {
    let img = c
        .prepare_cached(&format!("SELECT {COLS} FROM images WHERE id = ?1"))?
        .query_row([id.as_str()], image_row)
        .optional()?;
    match img {
        Some(mut img) => {
            load_children(c, &mut img)?;
            Ok(Some(img))
        }
        None => Ok(None),
    }
}

pub fn delete_image(c: &Connection, id: &ImageId) -> Result<bool> {
    Ok(c.execute("DELETE FROM images WHERE id = ?1", [id.as_str()])? > 0)
}

/// Every image `viewer` could see (its own, public, community, and shared with it in any
/// member status), each with the viewer's member status when it is a member. `None` is the
/// cloud administrator, who sees every image.
pub fn list_visible(
    c: &Connection,
    viewer: Option<&ProjectId>,
) -> Result<Vec<(Image, Option<MemberStatus>)>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {cols}, m.status FROM images i
         LEFT JOIN image_members m ON m.image_id = i.id AND m.member = ?1
         WHERE ?1 IS NULL OR i.owner = ?1 OR i.visibility IN ('public', 'community')
            OR (i.visibility = 'shared' AND m.member IS NOT NULL)",
        cols = COLS
            .split(", ")
            .map(|c| format!("i.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    ))?;
    let rows = st.query_map([viewer.map(ProjectId::as_str)], |r| {
        Ok((image_row(r)?, parse_opt(r, 18, MemberStatus::parse)?))
    })?;
    let mut out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    for (img, _) in &mut out {
        load_children(c, img)?;
    }
    Ok(out)
}

/// Ids of the images of `owner` that have every property of `props` (name, value), oldest
/// first.
pub fn ids_with_properties(
    c: &Connection,
    owner: &ProjectId,
    props: &[(&str, &str)],
) -> Result<Vec<ImageId>> {
    let mut sql = String::from("SELECT i.id FROM images i WHERE i.owner = ?1");
    let mut args: Vec<String> = vec![owner.as_str().to_owned()];
    for (k, v) in props {
        args.push((*k).to_owned());
        args.push((*v).to_owned());
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM image_properties p WHERE p.image_id = i.id
                 AND p.name = ?{} AND p.value = ?{})",
            args.len() - 1,
            args.len()
        ));
    }
    sql.push_str(" ORDER BY i.created_at, i.rowid");
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        r.get::<_, String>(0)
    })?;
    let mut out = Vec::new();
    for id in rows {
        if let Some(i) = ImageId::parse(&id?) {
            out.push(i);
        }
    }
    Ok(out)
}

/// Bytes stored for `owner`'s images: the quota counts every image that holds data.
pub fn usage(c: &Connection, owner: &ProjectId) -> Result<u64> {
    let n: i64 = c.query_row(
        "SELECT COALESCE(SUM(size), 0) FROM images WHERE owner = ?1 AND size IS NOT NULL",
        [owner.as_str()],
        |r| r.get(0),
    )?;
    Ok(n.max(0) as u64)
}

/// Marks every image left in `saving` (an upload cut by a crash or a restart) as `killed`.
pub fn kill_interrupted_uploads(
    c: &Connection,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize> {
    Ok(c.execute(
        "UPDATE images SET status = 'killed', updated_at = ?1 WHERE status = 'saving'",
        [ts(now)],
    )?)
}

/// The ids of the images whose data the content store must hold (active or deactivated), for
/// reconciling the store's directory with the database at start.
pub fn ids_with_data(c: &Connection) -> Result<Vec<ImageId>> {
    let mut st =
        c.prepare_cached("SELECT id FROM images WHERE status IN ('active', 'deactivated')")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows
        .collect::<rusqlite::Result<Vec<_>>>()?
        .iter()
        .filter_map(|s| ImageId::parse(s))
        .collect())
}

// ---- members --------------------------------------------------------------------------------

fn member_row(r: &Row<'_>) -> rusqlite::Result<ImageMember> {
    let id: String = r.get(0)?;
    Ok(ImageMember {
        image_id: ImageId::parse(&id).ok_or_else(|| bad_enum(0, &id))?,
        member: ProjectId::new(r.get::<_, String>(1)?),
        status: parse_col(r, 2, MemberStatus::parse)?,
        created_at: parse_ts(&r.get::<_, String>(3)?)?,
        updated_at: parse_ts(&r.get::<_, String>(4)?)?,
    })
}

const MEMBER_COLS: &str = "image_id, member, status, created_at, updated_at";

pub fn list_members(c: &Connection, image: &ImageId) -> Result<Vec<ImageMember>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {MEMBER_COLS} FROM image_members WHERE image_id = ?1 ORDER BY created_at, member"
    ))?;
    let rows = st.query_map([image.as_str()], member_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get_member(
    c: &Connection,
    image: &ImageId,
    member: &ProjectId,
) -> Result<Option<ImageMember>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {MEMBER_COLS} FROM image_members WHERE image_id = ?1 AND member = ?2"
    ))?
    .query_row([image.as_str(), member.as_str()], member_row)
    .optional()?)
}

pub fn insert_member(c: &Connection, m: &ImageMember) -> Result<()> {
    c.execute(
        &format!("INSERT INTO image_members ({MEMBER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
        params![
            m.image_id.as_str(),
            m.member.as_str(),
            m.status.as_str(),
            ts(m.created_at),
            ts(m.updated_at)
        ],
    )
    .map_err(Error::from_write)?;
    Ok(())
}

pub fn update_member(c: &Connection, m: &ImageMember) -> Result<bool> {
    Ok(c.execute(
        "UPDATE image_members SET status = ?3, updated_at = ?4 WHERE image_id = ?1 AND member = ?2",
        params![
            m.image_id.as_str(),
            m.member.as_str(),
            m.status.as_str(),
            ts(m.updated_at)
        ],
    )? > 0)
}

pub fn delete_member(c: &Connection, image: &ImageId, member: &ProjectId) -> Result<bool> {
    Ok(c.execute(
        "DELETE FROM image_members WHERE image_id = ?1 AND member = ?2",
        [image.as_str(), member.as_str()],
    )? > 0)
}

pub fn count_members(c: &Connection, image: &ImageId) -> Result<u64> {
    let n: i64 = c.query_row(
        "SELECT COUNT(*) FROM image_members WHERE image_id = ?1",
        [image.as_str()],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn image(owner: &str, vis: Visibility) -> Image {
        Image {
            id: ImageId::generate(),
            name: Some("cirros".into()),
            owner: ProjectId::new(owner),
            status: ImageStatus::Queued,
            visibility: vis,
            protected: false,
            os_hidden: false,
            disk_format: Some(DiskFormat::Qcow2),
            container_format: Some(ContainerFormat::Bare),
            min_disk: 0,
            min_ram: 0,
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            tags: vec!["a".into(), "b".into()],
            properties: [("k".to_owned(), "v".to_owned())].into_iter().collect(),
        }
    }

    #[test]
    fn round_trip_visibility_and_usage() {
        let s = crate::Store::open_in_memory().expect("store");
        let mine = image("p1", Visibility::Private);
        let shared = image("p2", Visibility::Shared);
        let other = image("p2", Visibility::Private);
        s.write_blocking(|tx| {
            insert_image(tx, &mine)?;
            insert_image(tx, &shared)?;
            insert_image(tx, &other)?;
            insert_member(
                tx,
                &ImageMember {
                    image_id: shared.id.clone(),
                    member: ProjectId::new("p1"),
                    status: MemberStatus::Pending,
                    created_at: Utc::now(),
                    updated_at: Utc::now(),
                },
            )
        })
        .expect("write");
        let got = s
            .read_blocking(|c| get_image(c, &mine.id))
            .expect("read")
            .expect("found");
        assert_eq!(got.tags, mine.tags);
        assert_eq!(got.properties, mine.properties);
        let seen = s
            .read_blocking(|c| list_visible(c, Some(&ProjectId::new("p1"))))
            .expect("list");
        let ids: Vec<_> = seen.iter().map(|(i, m)| (i.id.clone(), *m)).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&(shared.id.clone(), Some(MemberStatus::Pending))));
        assert!(!ids.iter().any(|(id, _)| *id == other.id));
        let all = s.read_blocking(|c| list_visible(c, None)).expect("all");
        assert_eq!(all.len(), 3);
        let mut active = mine.clone();
        active.size = Some(42);
        s.write_blocking(|tx| update_image(tx, &active))
            .expect("update");
        let used = s
            .read_blocking(|c| usage(c, &ProjectId::new("p1")))
            .expect("usage");
        assert_eq!(used, 42);
    }
}
