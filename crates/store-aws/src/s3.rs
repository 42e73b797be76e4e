//! The [`BlobStore`] port on one S3 bucket.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use bibgate_store::{BlobStore, Error, Result};
use tracing::instrument;

use crate::context::AwsContext;

/// The parts of a multipart upload (S3 takes 5 MiB to 5 GiB, the last one smaller): what
/// [`BlobStore::put_stream_if_absent`] holds in memory at once.
const PART_BYTES: usize = 5 * 1024 * 1024;

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
    /// One `GetObject` (of `range` when given): the bytes and whether the answer was a
    /// range; `None` when there is no such object. A range from the end of the object on
    /// is no bytes.
    async fn fetch(
        &self,
        key: &str,
        range: Option<String>,
        what: &str,
    ) -> Result<Option<(Vec<u8>, bool)>> {
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
                return Ok(Some((Vec::new(), true)));
            }
            Err(err) => return Err(backend(what, &err)),
        };
        let ranged = output.content_range().is_some();
        let body = output
            .body
            .collect()
            .await
            .map_err(|err| Error::Backend(format!("could not {what}: {err}")))?;
        Ok(Some((body.into_bytes().to_vec(), ranged)))
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

/// Up to [`PART_BYTES`] of `source` (fewer only at its end). The buffer is reserved, not
/// zeroed, so only the bytes read take memory; `read_to_end` probes for the end before it
/// would grow a full buffer.
fn read_part(source: &mut dyn std::io::Read, key: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut part = Vec::with_capacity(PART_BYTES);
    source
        .take(PART_BYTES as u64)
        .read_to_end(&mut part)
        .map_err(|err| bibgate_store::stream_error(key, &err))?;
    Ok(part)
}

impl S3BlobStore {
    /// `first` and the rest of `source` under `key` as a multipart upload (parts of
    /// [`PART_BYTES`], one read while none is in flight); with `if_absent`, completed only
    /// if the key is free (`If-None-Match: *` on `CompleteMultipartUpload`). Returns whether
    /// it was written and how many bytes; an upload not completed is aborted.
    fn put_parts(
        &self,
        key: &str,
        first: Vec<u8>,
        source: &mut dyn std::io::Read,
        if_absent: bool,
    ) -> Result<(bool, u64)> {
        let what = format!("start a multipart upload of {}", self.shown(key));
        let started = self
            .context
            .block_on(
                self.client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .send(),
            )
            .map_err(|err| backend(&what, &err))?;
        let upload_id = started
            .upload_id()
            .ok_or_else(|| Error::Backend(format!("could not {what}: S3 gave no upload id")))?;
        let outcome = self.upload_parts(key, upload_id, first, source, if_absent);
        if !matches!(outcome, Ok((true, _))) {
            // Best effort: the bucket's lifecycle rule (AbortIncompleteMultipartUpload)
            // removes what a failed abort leaves behind.
            let _ = self.context.block_on(
                self.client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .send(),
            );
        }
        outcome
    }

    /// The parts and the completion of [`S3BlobStore::put_parts`].
    fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Vec<u8>,
        source: &mut dyn std::io::Read,
        if_absent: bool,
    ) -> Result<(bool, u64)> {
        let what = format!("put {} (multipart)", self.shown(key));
        let mut total = 0u64;
        let mut parts = Vec::new();
        let mut part = first;
        while !part.is_empty() {
            let number = i32::try_from(parts.len() + 1)
                .map_err(|_| Error::Backend(format!("could not {what}: too many parts")))?;
            let part_len = part.len() as u64;
            let uploaded = self
                .context
                .block_on(
                    self.client
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .part_number(number)
                        .body(ByteStream::from(std::mem::take(&mut part)))
                        .send(),
                )
                .map_err(|err| backend(&what, &err))?;
            total += part_len;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(uploaded.e_tag().map(str::to_owned))
                    .build(),
            );
            part = read_part(source, key)?;
        }
        let mut conflicts = 0;
        loop {
            let completed = self.context.block_on(
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts.clone()))
                            .build(),
                    )
                    .set_if_none_match(if_absent.then(|| "*".to_owned()))
                    .send(),
            );
            match completed {
                Ok(_) => return Ok((true, total)),
                Err(err)
                    if if_absent
                        && (status(&err) == Some(412)
                            || err.code() == Some("PreconditionFailed")) =>
                {
                    return Ok((false, total));
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
    /// One conditional `PutObject` when the bytes fit in one part; else, unless the key is
    /// already taken, a multipart upload completed only if the key is free.
    #[instrument(name = "s3.put_stream_if_absent", skip(self, source), fields(bucket = %self.bucket), err)]
    fn put_stream_if_absent(&self, key: &str, source: &mut dyn std::io::Read) -> Result<bool> {
        let first = read_part(source, key)?;
        if first.len() < PART_BYTES {
            return self.put_if_absent(key, &first);
        }
        if self.exists(key)? {
            return Ok(false);
        }
        Ok(self.put_parts(key, first, source, true)?.0)
    }

    /// One `PutObject` when the bytes fit in one part, else a multipart upload.
    #[instrument(name = "s3.put_stream", skip(self, source), fields(bucket = %self.bucket), err)]
    fn put_stream(&self, key: &str, source: &mut dyn std::io::Read) -> Result<u64> {
        let first = read_part(source, key)?;
        if first.len() < PART_BYTES {
            self.put(key, &first)?;
            return Ok(first.len() as u64);
        }
        Ok(self.put_parts(key, first, source, false)?.1)
    }

    #[instrument(name = "s3.put", skip(self, bytes), fields(bucket = %self.bucket, len = bytes.len()), err)]
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let body = ByteStream::from(bytes.to_vec());
        self.context
            .block_on(async {
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .body(body)
                    .send()
                    .await
            })
            .map_err(|err| backend(&format!("put {}", self.shown(key)), &err))?;
        Ok(())
    }

    #[instrument(name = "s3.put_if_absent", skip(self, bytes), fields(bucket = %self.bucket, len = bytes.len()), err)]
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        let mut conflicts = 0;
        loop {
            let body = ByteStream::from(bytes.to_vec());
            let sent = self.context.block_on(async {
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .if_none_match("*")
                    .body(body)
                    .send()
                    .await
            });
            match sent {
                Ok(_) => return Ok(true),
                Err(err)
                    if status(&err) == Some(412) || err.code() == Some("PreconditionFailed") =>
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
                Err(err) => {
                    return Err(backend(&format!("put {} if absent", self.shown(key)), &err));
                }
            }
        }
    }

    #[instrument(name = "s3.get", skip(self), fields(bucket = %self.bucket), err)]
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let what = format!("get {}", self.shown(key));
        self.context
            .block_on(self.fetch(key, None, &what))
            .map(|found| found.map(|(bytes, _)| bytes))
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

    #[instrument(name = "s3.delete", skip(self), fields(bucket = %self.bucket), err)]
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
