//! The content store: one file per image under `<data_dir>/images/`, named by the image id.
//!
//! Invariants:
//! - A file under an image's id is complete, synced and checked. Uploads write to
//!   `.tmp-<id>-<random>` in the same directory (so the final rename is atomic), fsync it,
//!   probe it with `qemu-img`, rename it, and fsync the directory.
//! - Data is never held whole in memory: the request body is streamed in blocks through a
//!   bounded channel to a blocking writer thread, which writes them as they arrive while two
//!   more threads compute MD5 and SHA-512 of the same blocks.
//! - Any failure (a cut body, the quota, a bad or dangerous image, a full disk) removes the
//!   temporary file and marks the image `killed`. Nothing becomes `active` without its data.
//! - Downloads are streamed from the file in chunks by a blocking reader thread.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use md5::{Digest, Md5};
use model::Context;
use model::ProjectId;
use model::image::{Image, ImageId, ImageStatus};
use sha2::Sha512;
use store::image as sql;
use tokio::sync::mpsc;

use crate::{Error, Images, Result, forbidden, not_found};

/// Chunk size of downloads.
const READ_CHUNK: usize = 256 * 1024;
/// Blocks queued between the request body and the writer thread. With BLOCK, this bounds the
/// memory one upload holds to a few MiB.
const QUEUE: usize = 4;
/// Size of the blocks handed to the writer thread.
const BLOCK: usize = 1 << 20;
/// How long `qemu-img info` may take on one image.
const TMP_PREFIX: &str = ".tmp-";

pub fn data_path(dir: &Path, id: &ImageId) -> PathBuf {
    dir.join(id.as_str())
}

pub(crate) fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, path = %path.display(), "could not remove image data");
    }
}

/// Creates the store's directory and removes what no image owns: temporary files of uploads
/// cut by a crash, and files of images that hold no data (killed or deleted meanwhile).
pub(crate) fn reconcile(dir: &Path, keep: &[ImageId]) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let owned = ImageId::parse(&name).is_some_and(|id| keep.contains(&id));
        if !owned && (name.starts_with(TMP_PREFIX) || ImageId::parse(&name).is_some()) {
            tracing::info!(file = %name, "removing image data no image owns");
            remove_quietly(&entry.path());
        }
    }
    Ok(())
}

/// A part of the data, as a `Range: bytes=` header asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (inclusive) or `bytes=a-` (`None`: to the end).
    From(u64, Option<u64>),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The (offset, length) this range selects in `size` bytes.
    fn resolve(self, size: u64) -> Result<(u64, u64)> {
        let (start, end) = match self {
            ByteRange::From(a, b) => (a, b.unwrap_or(u64::MAX).min(size.saturating_sub(1))),
            ByteRange::Suffix(n) => (size.saturating_sub(n), size.saturating_sub(1)),
        };
        if size == 0 || start >= size || end < start || matches!(self, ByteRange::Suffix(0)) {
            return Err(Error::RangeNotSatisfiable(size));
        }
        Ok((start, end - start + 1))
    }
}

/// What a download yields.
pub enum Content {
    /// The image holds no data yet (Glance answers 204).
    Empty,
    Data {
        image: Box<Image>,
        /// Size of the whole data.
        total: u64,
        /// The part sent: `Some((offset, length))` for a range.
        range: Option<(u64, u64)>,
        body: Box<dyn Stream<Item = io::Result<Bytes>> + Send + Unpin>,
    },
}

/// What the writer thread reports once the data is on disk.
struct Written {
    size: u64,
    md5: String,
    sha512: String,
    /// The first bytes, to recognise a format by its magic.
    head: Vec<u8>,
}

enum Msg {
    Chunk(Bytes),
    /// The body ended normally. A channel closed without it means the upload was abandoned.
    Finish,
}

/// Removes a temporary file when the upload that made it ends without renaming it.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn keep(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            remove_quietly(&p);
        }
    }
}

/// Counts an upload's bytes against its project's quota until the upload ends.
struct Reservation {
    images: Images,
    owner: ProjectId,
    bytes: u64,
}

impl Reservation {
    /// Adds `n` bytes; returns the project's total of in-flight bytes.
    fn add(&mut self, n: u64) -> u64 {
        self.bytes += n;
        let Ok(mut m) = self.images.in_flight.lock() else {
            return u64::MAX;
        };
        let e = m.entry(self.owner.clone()).or_default();
        *e += n;
        *e
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Ok(mut m) = self.images.in_flight.lock()
            && let Some(e) = m.get_mut(&self.owner)
        {
            *e = e.saturating_sub(self.bytes);
            if *e == 0 {
                m.remove(&self.owner);
            }
        }
    }
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::Io(io::Error::other(e.to_string()))
}

impl Images {
    /// Stores an image's data from a body stream. `declared` is the size the client announced
    /// (Content-Length), checked against the quota before a byte is read.
    ///
    /// The work runs in its own task: if the client goes away and the request future is
    /// dropped, the upload still sees its body fail and cleans up, instead of stopping at an
    /// arbitrary await and leaving the image `saving`.
    pub async fn upload<S, E>(
        &self,
        ctx: &Context,
        id: &ImageId,
        declared: Option<u64>,
        body: S,
    ) -> Result<Image>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let this = self.clone();
        let ctx = ctx.clone();
        let id = id.clone();
        tokio::spawn(async move { this.upload_task(&ctx, &id, declared, body).await })
            .await
            .map_err(join_err)?
    }

    async fn upload_task<S, E>(
        &self,
        ctx: &Context,
        id: &ImageId,
        declared: Option<u64>,
        body: S,
    ) -> Result<Image>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let (img, used) = self.begin_upload(ctx, id).await?;
        let result = self.receive(&img, used, declared, body).await;
        match result {
            Ok((written, virtual_size)) => self.finish_upload(&img, written, virtual_size).await,
            Err(e) => {
                if let Err(k) = self.kill(id).await {
                    tracing::error!(error = %k, image = %id, "could not mark a failed upload killed");
                }
                match &e {
                    Error::Io(_) | Error::Probe(_) | Error::Store(_) => {}
                    other => tracing::info!(image = %id, reason = %other, "upload refused"),
                }
                Err(e)
            }
        }
    }

    /// queued → saving, in one transaction with the checks that allow it. Returns the image
    /// and the bytes its owner already stores.
    async fn begin_upload(&self, ctx: &Context, id: &ImageId) -> Result<(Image, u64)> {
        let ctx = ctx.clone();
        let iid = id.clone();
        self.store
            .write(move |tx| {
                let Some(mut img) = sql::get_image(tx, &iid)? else {
                    return Ok(Err(not_found(&iid)));
                };
                let member = match &ctx.project_id {
                    Some(p) => sql::get_member(tx, &iid, p)?.map(|m| m.status),
                    None => None,
                };
                if !crate::can_see(&ctx, &img, member) {
                    return Ok(Err(not_found(&iid)));
                }
                if !ctx.can_write(&img.owner) {
                    return Ok(Err(forbidden()));
                }
                if img.status != ImageStatus::Queued {
                    return Ok(Err(Error::Conflict(format!(
                        "Image status transition from {} to saving is not allowed",
                        img.status
                    ))));
                }
                if img.disk_format.is_none() || img.container_format.is_none() {
                    return Ok(Err(Error::BadRequest(
                        "Properties disk_format, container_format must be set prior to saving data."
                            .into(),
                    )));
                }
                let used = sql::usage(tx, &img.owner)?;
                img.status = ImageStatus::Saving;
                img.updated_at = chrono::Utc::now();
                sql::update_image(tx, &img)?;
                Ok(Ok((img, used)))
            })
            .await?
    }

    fn quota_error(&self) -> Error {
        Error::OverLimit(format!(
            "Image storage quota of {} bytes for this project exceeded.",
            self.cfg.quota_bytes
        ))
    }

    /// Streams the body to a temporary file, probes it and renames it into place.
    async fn receive<S, E>(
        &self,
        img: &Image,
        used: u64,
        declared: Option<u64>,
        body: S,
    ) -> Result<(Written, Option<u64>)>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let quota = self.cfg.quota_bytes;
        let mut reservation = Reservation {
            images: self.clone(),
            owner: img.owner.clone(),
            bytes: 0,
        };
        if let Some(n) = declared
            && used
                .saturating_add(self.in_flight(&img.owner))
                .saturating_add(n)
                > quota
        {
            return Err(self.quota_error());
        }
        let tmp = self.cfg.dir.join(format!(
            "{TMP_PREFIX}{}-{}",
            img.id,
            uuid::Uuid::new_v4().simple()
        ));
        let mut guard = TempFile(Some(tmp.clone()));
        let (tx, rx) = mpsc::channel::<Msg>(QUEUE);
        let path = tmp.clone();
        let writer = tokio::task::spawn_blocking(move || write_file(&path, rx));
        let mut body = std::pin::pin!(body);
        let mut failure = None;
        // The body arrives in socket-sized pieces (often 8-64 KiB). They are gathered into
        // blocks of up to BLOCK bytes before crossing to the writer thread, so the per-chunk
        // cost of the channels and thread wake-ups is paid a few times per MiB, not dozens.
        let mut block = bytes::BytesMut::new();
        let mut ended = false;
        while !ended {
            match body.next().await {
                Some(Ok(chunk)) => {
                    if chunk.is_empty() {
                        continue;
                    }
                    let in_flight = reservation.add(chunk.len() as u64);
                    if used.saturating_add(in_flight) > quota {
                        failure = Some(self.quota_error());
                        break;
                    }
                    if block.is_empty() && chunk.len() >= BLOCK {
                        block = chunk.into();
                    } else {
                        block.extend_from_slice(&chunk);
                    }
                    if block.len() < BLOCK {
                        continue;
                    }
                }
                Some(Err(e)) => {
                    failure = Some(Error::Interrupted(e.to_string()));
                    break;
                }
                None => ended = true,
            }
            if !block.is_empty() {
                let full = std::mem::take(&mut block).freeze();
                if tx.send(Msg::Chunk(full)).await.is_err() {
                    // The writer stopped: its own error says why.
                    break;
                }
            }
        }
        if failure.is_none() {
            // A closed channel here means the writer already failed; its result reports it.
            let _ = tx.send(Msg::Finish).await;
        }
        drop(tx);
        let written = writer.await.map_err(join_err)?;
        if let Some(f) = failure {
            return Err(f);
        }
        let written = written.map_err(disk_full)?;
        let virtual_size =
            crate::probe::probe(&self.cfg.qemu_img, &tmp, img.disk_format, &written.head).await?;
        let final_path = data_path(&self.cfg.dir, &img.id);
        let dir = self.cfg.dir.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            std::fs::rename(&tmp, &final_path)?;
            // The rename itself must survive a power cut before the image is called active.
            File::open(&dir)?.sync_all()
        })
        .await
        .map_err(join_err)??;
        guard.keep();
        Ok((written, virtual_size))
    }

    /// saving → active with the data's facts. If the image was deleted (or changed state)
    /// meanwhile, the data is discarded instead.
    async fn finish_upload(
        &self,
        img: &Image,
        w: Written,
        virtual_size: Option<u64>,
    ) -> Result<Image> {
        let iid = img.id.clone();
        let done = self
            .store
            .write(move |tx| {
                let Some(mut img) = sql::get_image(tx, &iid)? else {
                    return Ok(None);
                };
                if img.status != ImageStatus::Saving {
                    return Ok(None);
                }
                img.status = ImageStatus::Active;
                img.size = Some(w.size);
                img.virtual_size = virtual_size;
                img.checksum = Some(w.md5);
                img.os_hash_algo = Some("sha512".into());
                img.os_hash_value = Some(w.sha512);
                img.updated_at = chrono::Utc::now();
                sql::update_image(tx, &img)?;
                Ok(Some(img))
            })
            .await;
        match done {
            Ok(Some(img)) => Ok(img),
            other => {
                let path = data_path(&self.cfg.dir, &img.id);
                tokio::task::spawn_blocking(move || remove_quietly(&path))
                    .await
                    .map_err(join_err)?;
                match other {
                    Err(e) => Err(e.into()),
                    _ => Err(Error::Conflict(format!(
                        "Image {} was deleted or changed during the upload.",
                        img.id
                    ))),
                }
            }
        }
    }

    /// saving → killed, after a failed upload.
    async fn kill(&self, id: &ImageId) -> Result<()> {
        let iid = id.clone();
        self.store
            .write(move |tx| {
                if let Some(mut img) = sql::get_image(tx, &iid)?
                    && img.status == ImageStatus::Saving
                {
                    img.status = ImageStatus::Killed;
                    img.updated_at = chrono::Utc::now();
                    sql::update_image(tx, &img)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Opens an image's data for reading, whole or a range of it.
    pub async fn download(
        &self,
        ctx: &Context,
        id: &ImageId,
        range: Option<ByteRange>,
    ) -> Result<Content> {
        let img = self.visible(ctx, id).await?;
        match img.status {
            ImageStatus::Active => {}
            ImageStatus::Deactivated if ctx.is_admin() => {}
            ImageStatus::Deactivated => {
                return Err(Error::Forbidden(
                    "The requested image has been deactivated. Image data download is forbidden."
                        .into(),
                ));
            }
            _ => return Ok(Content::Empty),
        }
        let total = img.size.unwrap_or(0);
        let part = range.map(|r| r.resolve(total)).transpose()?;
        let (offset, len) = part.unwrap_or((0, total));
        let path = data_path(&self.cfg.dir, id);
        let file = tokio::task::spawn_blocking(move || -> io::Result<File> {
            let mut f = File::open(&path)?;
            f.seek(SeekFrom::Start(offset))?;
            Ok(f)
        })
        .await
        .map_err(join_err)?
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => not_found(id),
            _ => Error::Io(e),
        })?;
        Ok(Content::Data {
            image: Box::new(img),
            total,
            range: part,
            body: Box::new(read_stream(file, len)),
        })
    }
}

/// Streams `len` bytes of `file` from its current position, read by a blocking thread. When
/// the client goes away the stream is dropped, the channel closes and the thread stops.
fn read_stream(mut file: File, len: u64) -> impl Stream<Item = io::Result<Bytes>> + Send + Unpin {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut left = len;
        while left > 0 {
            let n = READ_CHUNK.min(usize::try_from(left).unwrap_or(READ_CHUNK));
            let mut buf = vec![0u8; n];
            let r = file.read_exact(&mut buf).map(|()| Bytes::from(buf));
            let failed = r.is_err();
            if tx.blocking_send(r).is_err() || failed {
                return;
            }
            left -= n as u64;
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Feeds every block it receives to a hash and returns the hex digest once the sender is gone.
fn hash_blocks<D: Digest>(rx: std::sync::mpsc::Receiver<Bytes>) -> String {
    let mut h = D::new();
    for b in rx {
        h.update(&b);
    }
    hex::encode(h.finalize())
}

/// The writer thread: writes each block as it arrives while two more threads compute MD5 and
/// SHA-512 of the same blocks (shared, not copied), then fsyncs. Three stages in parallel
/// keep the upload bound by the slowest of them instead of by their sum. Returns an error
/// (leaving the file to the caller's guard) if the channel closes without `Finish`.
fn write_file(path: &Path, mut rx: mpsc::Receiver<Msg>) -> Result<Written> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let mut out = io::BufWriter::with_capacity(BLOCK, file);
    let mut head = Vec::with_capacity(16);
    let (size, md5, sha512) = std::thread::scope(|s| -> Result<(u64, String, String)> {
        let (md5_tx, md5_rx) = std::sync::mpsc::sync_channel::<Bytes>(QUEUE);
        let (sha_tx, sha_rx) = std::sync::mpsc::sync_channel::<Bytes>(QUEUE);
        let md5 = s.spawn(move || hash_blocks::<Md5>(md5_rx));
        let sha = s.spawn(move || hash_blocks::<Sha512>(sha_rx));
        // The senders move into the pump and are dropped when it returns, so the hash threads
        // always end and the scope can join them, whatever the outcome.
        let pumped = pump(&mut rx, &mut out, &mut head, [md5_tx, sha_tx]);
        let panicked = |_| Error::Io(io::Error::other("hash thread panicked"));
        let md5 = md5.join().map_err(panicked)?;
        let sha = sha.join().map_err(panicked)?;
        Ok((pumped?, md5, sha))
    })?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(Written {
        size,
        md5,
        sha512,
        head,
    })
}

fn pump(
    rx: &mut mpsc::Receiver<Msg>,
    out: &mut impl Write,
    head: &mut Vec<u8>,
    hashers: [std::sync::mpsc::SyncSender<Bytes>; 2],
) -> Result<u64> {
    let mut size = 0u64;
    loop {
        match rx.blocking_recv() {
            Some(Msg::Chunk(b)) => {
                if head.len() < 16 {
                    let take = (16 - head.len()).min(b.len());
                    head.extend_from_slice(&b[..take]);
                }
                for h in &hashers {
                    if h.send(b.clone()).is_err() {
                        return Err(Error::Io(io::Error::other("hash thread stopped")));
                    }
                }
                out.write_all(&b)?;
                size += b.len() as u64;
            }
            Some(Msg::Finish) => {
                out.flush()?;
                return Ok(size);
            }
            None => return Err(Error::Interrupted("upload abandoned".into())),
        }
    }
}

/// A full disk is the client's concern as much as a quota is (Glance answers 413 "Image
/// storage media is full"); any other IO error stays internal.
fn disk_full(e: Error) -> Error {
    match e {
        Error::Io(io) if io.kind() == io::ErrorKind::StorageFull => {
            Error::OverLimit("Image storage media is full.".into())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_http() {
        assert_eq!(ByteRange::From(0, Some(9)).resolve(100).ok(), Some((0, 10)));
        assert_eq!(ByteRange::From(90, None).resolve(100).ok(), Some((90, 10)));
        assert_eq!(
            ByteRange::From(90, Some(500)).resolve(100).ok(),
            Some((90, 10))
        );
        assert_eq!(ByteRange::Suffix(10).resolve(100).ok(), Some((90, 10)));
        assert_eq!(ByteRange::Suffix(500).resolve(100).ok(), Some((0, 100)));
        assert!(ByteRange::From(100, None).resolve(100).is_err());
        assert!(ByteRange::From(5, Some(4)).resolve(100).is_err());
        assert!(ByteRange::Suffix(0).resolve(100).is_err());
    }
}
