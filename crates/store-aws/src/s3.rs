//! The [`BlobStore`] port on one S3 bucket.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use bibgate_store::{BlobStore, Error, Result};
use tracing::instrument;

use crate::bounded::{Task, run_bounded};
use crate::context::AwsContext;

/// A streamed blob up to this size is sent from memory; a larger one is first copied to a
/// temporary file (owner-only, removed after) and sent from there as one streamed
/// `PutObject` (up to S3's 5 GB), so its size costs no memory.
const IN_MEMORY_BYTES: usize = 1024 * 1024;
/// The most a read reserves up front for the length S3 announces (a longer body grows
/// the buffer as it arrives).
const PREALLOCATED_BYTES: usize = 64 * 1024 * 1024;
/// Requests of one `get_many` / `put_if_absent_many` in flight at once.
const BLOB_CONCURRENCY: usize = 32;

/// Names the temporary files of [`Spooled`] apart within the process.
static SPOOLED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How often a conditional put is tried again after S3 answered 409
/// (`ConditionalRequestConflict`: another conditional write to the key was in flight).
const CONDITIONAL_CONFLICT_RETRIES: u32 = 5;

/// The [`BlobStore`] port on an S3 bucket: blob key `a/b` is object key `a/b`.
///
/// `put_if_absent` is a conditional `PutObject` (`If-None-Match: *`), atomic on S3.
/// `delete` reports whether the key existed with a `HeadObject` first (S3's delete does
/// not say); two concurrent deletes of one key may both return true. `list` pages through
/// `ListObjectsV2`, whose order is S3's: by UTF-8 bytes, i.e. lexical.
#[derive(Clone, Debug)]
pub struct S3BlobStore {
    context: AwsContext,
    client: Client,
    bucket: String,
}

fn backend<E, R>(what: &str, err: &SdkError<E, R>) -> Error
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    Error::Backend(format!("could not {what}: {}", DisplayErrorContext(err)))
}

fn status<E, R: HttpStatus>(err: &SdkError<E, R>) -> Option<u16> {
    err.raw_response().map(HttpStatus::status_code)
}

/// The HTTP status of a raw response (kept generic so the SDK's types stay here).
trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

impl S3BlobStore {
    /// One `GetObject` (of `range` when given): the body, still to be read, its announced
    /// length and whether the answer was a range; `None` when there is no such object. A
    /// range from the end of the object on is an empty body.
    async fn request(
        &self,
        key: &str,
        range: Option<String>,
        what: &str,
    ) -> Result<Option<(ByteStream, usize, bool)>> {
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range)
            .send()
            .await
        {
            Ok(output) => output,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|service| service.is_no_such_key())
                    || (status(&err) == Some(404) && err.code() != Some("NoSuchBucket")) =>
            {
                return Ok(None);
            }
            Err(err) if status(&err) == Some(416) || err.code() == Some("InvalidRange") => {
                return Ok(Some((ByteStream::from_static(b""), 0, true)));
            }
            Err(err) => return Err(backend(what, &err)),
        };
        let announced = output
            .content_length()
            .and_then(|len| usize::try_from(len).ok())
            .unwrap_or(0);
        let ranged = output.content_range().is_some();
        Ok(Some((output.body, announced, ranged)))
    }

    /// [`S3BlobStore::request`] with the body read: the bytes and whether the answer was a
    /// range.
    async fn fetch(
        &self,
        key: &str,
        range: Option<String>,
        what: &str,
    ) -> Result<Option<(Vec<u8>, bool)>> {
        let Some((mut body, announced, ranged)) = self.request(key, range, what).await? else {
            return Ok(None);
        };
        // Piece by piece into one buffer of the announced length: the bytes are held once,
        // not once per piece, once joined and once copied out.
        let mut bytes = Vec::with_capacity(announced.min(PREALLOCATED_BYTES));
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|err| Error::Backend(format!("could not {what}: {err}")))?;
            bytes.extend_from_slice(&piece);
        }
        Ok(Some((bytes, ranged)))
    }

    /// One whole object (`get`, one of `get_many`).
    async fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let what = format!("get {}", self.shown(key));
        let found = self.fetch(key, None, &what).await?;
        Ok(found.map(|(bytes, _)| bytes))
    }

    /// A store over `bucket`. Path-style addressing is used when an S3 endpoint URL is
    /// configured (see the crate docs, "Endpoints").
    pub fn new(context: &AwsContext, bucket: &str) -> S3BlobStore {
        let path_style = context.has_custom_endpoint("S3");
        let config = aws_sdk_s3::config::Builder::from(context.sdk_config())
            .force_path_style(path_style)
            .build();
        S3BlobStore {
            context: context.clone(),
            client: Client::from_conf(config),
            bucket: bucket.to_owned(),
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The SDK client (for provisioning and tests within this crate).
    #[cfg(feature = "test-support")]
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    #[cfg(feature = "test-support")]
    pub(crate) fn context(&self) -> &AwsContext {
        &self.context
    }

    /// Creates the bucket (for local runs and tests; on AWS `infra/template.yaml` does).
    pub fn create_bucket(&self) -> crate::Result<()> {
        let client = &self.client;
        let bucket = &self.bucket;
        self.context
            .block_on(async move { client.create_bucket().bucket(bucket).send().await })
            .map_err(|err| crate::Error::Provision {
                what: format!("bucket {bucket:?}"),
                message: DisplayErrorContext(&err).to_string(),
            })?;
        Ok(())
    }

    /// Whether an object is under `key` (`HeadObject`).
    fn exists(&self, key: &str) -> Result<bool> {
        let what = format!("look for {}", self.shown(key));
        self.context.block_on(async {
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|service| service.is_not_found())
                        || status(&err) == Some(404) =>
                {
                    Ok(false)
                }
                Err(err) => Err(backend(&what, &err)),
            }
        })
    }

    fn shown(&self, key: &str) -> String {
        format!("\"s3://{}/{key}\"", self.bucket)
    }
}

/// A key as `CopyObject`'s `x-amz-copy-source` wants it: URL-encoded, `/` kept.
fn encode_copy_source(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Up to `limit` bytes of `source` (fewer only at its end).
fn read_up_to(source: &mut dyn std::io::Read, key: &str, limit: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(limit);
    source
        .take(limit as u64)
        .read_to_end(&mut bytes)
        .map_err(|err| bibgate_store::stream_error(key, &err))?;
    Ok(bytes)
}

/// A stream's bytes in a temporary file (owner-only), removed when dropped.
struct Spooled {
    path: std::path::PathBuf,
    len: u64,
}

impl Spooled {
    /// `first`, then the rest of `source`, in a new temporary file.
    fn new(key: &str, first: &[u8], source: &mut dyn std::io::Read) -> Result<Spooled> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = std::env::temp_dir().join(format!(
            "bibgate-s3-{}-{}",
            std::process::id(),
            SPOOLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let failed = |err: std::io::Error| {
            Error::Backend(format!(
                "could not keep the bytes of {key:?} in {}: {err}",
                path.display()
            ))
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(failed)?;
        let mut spooled = Spooled {
            path: path.clone(),
            len: first.len() as u64,
        };
        file.write_all(first).map_err(failed)?;
        let mut source_failed = None;
        match bibgate_store::copy_from(source, &mut file, &mut source_failed) {
            Ok(copied) => spooled.len += copied,
            Err(err) => {
                return Err(match source_failed {
                    Some(err) => bibgate_store::stream_error(key, &err),
                    None => failed(err),
                });
            }
        }
        file.flush().map_err(failed)?;
        Ok(spooled)
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// An object's body as a reader: a `read` past the piece at hand waits on the adapter's
/// runtime for the next piece, so a large object costs one piece of memory.
struct BodyReader {
    context: AwsContext,
    body: ByteStream,
    piece: Vec<u8>,
    taken: usize,
    what: String,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.taken == self.piece.len() {
            let body = &mut self.body;
            match self.context.block_on(body.next()) {
                None => return Ok(0),
                Some(Ok(piece)) => {
                    self.piece.clear();
                    self.piece.extend_from_slice(&piece);
                    self.taken = 0;
                }
                Some(Err(err)) => {
                    return Err(std::io::Error::other(format!(
                        "could not {}: {err}",
                        self.what
                    )));
                }
            }
        }
        let n = out.len().min(self.piece.len() - self.taken);
        out[..n].copy_from_slice(&self.piece[self.taken..self.taken + n]);
        self.taken += n;
        Ok(n)
    }
}

/// The body of a `PutObject`: bytes in memory, or a file read as it is sent.
#[derive(Clone, Copy)]
enum PutBody<'a> {
    Bytes(&'a [u8]),
    File(&'a std::path::Path),
}

impl S3BlobStore {
    /// One `PutObject` of `body`; with `if_absent` (`If-None-Match: *`) only if the key is
    /// free, tried again when S3 answers 409 (another conditional write was in flight).
    /// Returns whether it was written.
    fn send_put(&self, key: &str, body: PutBody<'_>, if_absent: bool) -> Result<bool> {
        self.context.block_on(self.put_object(key, body, if_absent))
    }

    /// [`S3BlobStore::send_put`] as a future, to have many in flight at once.
    async fn put_object(&self, key: &str, body: PutBody<'_>, if_absent: bool) -> Result<bool> {
        let what = format!(
            "put {}{}",
            self.shown(key),
            if if_absent { " if absent" } else { "" }
        );
        let mut conflicts = 0;
        loop {
            let stream = match body {
                PutBody::Bytes(bytes) => ByteStream::from(bytes.to_vec()),
                PutBody::File(path) => ByteStream::from_path(path).await.map_err(|err| {
                    Error::Backend(format!("could not {what} from {}: {err}", path.display()))
                })?,
            };
            let sent = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .set_if_none_match(if_absent.then(|| "*".to_owned()))
                .body(stream)
                .send()
                .await;
            match sent {
                Ok(_) => return Ok(true),
                Err(err)
                    if if_absent
                        && (status(&err) == Some(412)
                            || err.code() == Some("PreconditionFailed")) =>
                {
                    return Ok(false);
                }
                Err(err)
                    if (status(&err) == Some(409)
                        || err.code() == Some("ConditionalRequestConflict"))
                        && conflicts < CONDITIONAL_CONFLICT_RETRIES =>
                {
                    conflicts += 1;
                }
                Err(err) => return Err(backend(&what, &err)),
            }
        }
    }
}

impl BlobStore for S3BlobStore {
    /// One conditional `PutObject`: from memory up to 1 MiB, else (unless the
    /// key is already taken) streamed from a temporary copy.
    #[instrument(name = "s3.put_stream_if_absent", skip(self, source), fields(bucket = %self.bucket), err)]
    fn put_stream_if_absent(&self, key: &str, source: &mut dyn std::io::Read) -> Result<bool> {
        let first = read_up_to(source, key, IN_MEMORY_BYTES)?;
        if first.len() < IN_MEMORY_BYTES {
            return self.put_if_absent(key, &first);
        }
        if self.exists(key)? {
            return Ok(false);
        }
        let spooled = Spooled::new(key, &first, source)?;
        drop(first);
        self.send_put(key, PutBody::File(&spooled.path), true)
    }

    /// One `PutObject`: from memory up to 1 MiB, else streamed from a
    /// temporary copy.
    #[instrument(name = "s3.put_stream", skip(self, source), fields(bucket = %self.bucket), err)]
    fn put_stream(&self, key: &str, source: &mut dyn std::io::Read) -> Result<u64> {
        let first = read_up_to(source, key, IN_MEMORY_BYTES)?;
        if first.len() < IN_MEMORY_BYTES {
            self.put(key, &first)?;
            return Ok(first.len() as u64);
        }
        let spooled = Spooled::new(key, &first, source)?;
        drop(first);
        self.send_put(key, PutBody::File(&spooled.path), false)?;
        Ok(spooled.len)
    }

    #[instrument(name = "s3.put", skip(self, bytes), fields(bucket = %self.bucket, len = bytes.len()), err)]
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.send_put(key, PutBody::Bytes(bytes), false)?;
        Ok(())
    }

    #[instrument(name = "s3.put_if_absent", skip(self, bytes), fields(bucket = %self.bucket, len = bytes.len()), err)]
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        self.send_put(key, PutBody::Bytes(bytes), true)
    }

    /// Conditional `PutObject`s, 32 in flight at a time, driven by the calling thread.
    #[instrument(name = "s3.put_if_absent_many", skip_all, fields(bucket = %self.bucket, n = blobs.len()))]
    fn put_if_absent_many(&self, blobs: &[(&str, &[u8])]) -> Vec<Result<bool>> {
        let tasks: Vec<Task<'_, Result<bool>>> = blobs
            .iter()
            .map(|&(key, bytes)| {
                Box::pin(self.put_object(key, PutBody::Bytes(bytes), true)) as Task<'_, _>
            })
            .collect();
        self.context.block_on(run_bounded(tasks, BLOB_CONCURRENCY))
    }

    #[instrument(name = "s3.get", skip(self), fields(bucket = %self.bucket), err)]
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.context.block_on(self.get_object(key))
    }

    /// `GetObject`s, 32 in flight at a time, driven by the calling thread.
    #[instrument(name = "s3.get_many", skip_all, fields(bucket = %self.bucket, n = keys.len()))]
    fn get_many(&self, keys: &[&str]) -> Vec<Result<Option<Vec<u8>>>> {
        let tasks: Vec<Task<'_, Result<Option<Vec<u8>>>>> = keys
            .iter()
            .map(|&key| Box::pin(self.get_object(key)) as Task<'_, _>)
            .collect();
        self.context.block_on(run_bounded(tasks, BLOB_CONCURRENCY))
    }

    /// One `GetObject`, its body read as it arrives: the reader holds one piece at a time.
    #[instrument(name = "s3.open", skip(self), fields(bucket = %self.bucket), err)]
    fn open(&self, key: &str) -> Result<Option<Box<dyn std::io::Read + Send>>> {
        let what = format!("read {}", self.shown(key));
        let Some((body, _, _)) = self.context.block_on(self.request(key, None, &what))? else {
            return Ok(None);
        };
        Ok(Some(Box::new(BodyReader {
            context: self.context.clone(),
            body,
            piece: Vec::new(),
            taken: 0,
            what,
        })))
    }

    #[instrument(name = "s3.get_range", skip(self), fields(bucket = %self.bucket), err)]
    fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Option<Vec<u8>>> {
        if len == 0 {
            return Ok(self.exists(key)?.then(Vec::new));
        }
        let what = format!("get bytes {start}.. of {}", self.shown(key));
        let range = format!("bytes={start}-{}", start.saturating_add(len - 1));
        let Some((mut bytes, ranged)) =
            self.context.block_on(self.fetch(key, Some(range), &what))?
        else {
            return Ok(None);
        };
        // A server that ignores the range sends the whole object.
        if !ranged || bytes.len() as u64 > len {
            let from = usize::try_from(start)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let to = usize::try_from(start.saturating_add(len))
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            bytes = bytes[from..to].to_vec();
        }
        Ok(Some(bytes))
    }

    /// Copies on the server (`CopyObject`, up to 5 GB), the bytes never pass through this
    /// process; `to` is checked first with a `HeadObject` (two copies racing to a free key
    /// both write it, which for the same source is the same bytes).
    #[instrument(name = "s3.copy_if_absent_many", skip_all, fields(bucket = %self.bucket, n = pairs.len()))]
    fn copy_if_absent_many(&self, pairs: &[(&str, &str)]) -> Vec<Result<bool>> {
        pairs
            .iter()
            .map(|&(from, to)| {
                if self.exists(to)? {
                    return Ok(false);
                }
                if !self.exists(from)? {
                    return Err(Error::NotFound(format!("blob {from:?}")));
                }
                let what = format!("copy {} to {}", self.shown(from), self.shown(to));
                let source = format!("{}/{}", self.bucket, encode_copy_source(from));
                self.context
                    .block_on(async {
                        self.client
                            .copy_object()
                            .bucket(&self.bucket)
                            .key(to)
                            .copy_source(source)
                            .send()
                            .await
                    })
                    .map_err(|err| backend(&what, &err))?;
                Ok(true)
            })
            .collect()
    }

    #[instrument(name = "s3.list", skip(self), fields(bucket = %self.bucket), err)]
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let what = format!("list {}", self.shown(prefix));
        self.context.block_on(async {
            let mut keys = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let mut request = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .set_continuation_token(token.take());
                if !prefix.is_empty() {
                    request = request.prefix(prefix);
                }
                let page = request.send().await.map_err(|err| backend(&what, &err))?;
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|object| object.key().map(str::to_owned)),
                );
                match page.next_continuation_token() {
                    Some(next) if page.is_truncated().unwrap_or(false) => {
                        token = Some(next.to_owned());
                    }
                    _ => break,
                }
            }
            keys.sort();
            Ok(keys)
        })
    }

    /// `DeleteObjects` of up to 1,000 keys a request (quiet: S3 answers only the keys it
    /// could not delete, which fail the call).
    #[instrument(name = "s3.delete_many", skip(self, keys), fields(bucket = %self.bucket, keys = keys.len()), err)]
    fn delete_many(&self, keys: &[String]) -> Result<()> {
        for batch in keys.chunks(1000) {
            let what = format!(
                "delete {} keys of s3://{} (the first {:?})",
                batch.len(),
                self.bucket,
                batch[0]
            );
            let objects = batch
                .iter()
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|err| Error::Backend(format!("could not {what}: {err}")))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|err| Error::Backend(format!("could not {what}: {err}")))?;
            let output = self
                .context
                .block_on(
                    self.client
                        .delete_objects()
                        .bucket(&self.bucket)
                        .delete(delete)
                        .send(),
                )
                .map_err(|err| backend(&what, &err))?;
            if let Some(failed) = output.errors().first() {
                return Err(Error::Backend(format!(
                    "could not {what}: {:?}: {} ({} keys not deleted)",
                    failed.key().unwrap_or_default(),
                    failed.message().unwrap_or_default(),
                    output.errors().len()
                )));
            }
        }
        Ok(())
    }

    #[instrument(name = "s3.delete", skip(self), fields(bucket = %self.bucket), err)]
    fn delete(&self, key: &str) -> Result<bool> {
        let what = format!("delete {}", self.shown(key));
        self.context.block_on(async {
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(_) => {}
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|service| service.is_not_found())
                        || status(&err) == Some(404) =>
                {
                    return Ok(false);
                }
                Err(err) => return Err(backend(&what, &err)),
            }
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|err| backend(&what, &err))?;
            Ok(true)
        })
    }
}
