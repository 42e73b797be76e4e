//! The steps of one export (`inbox/<institution>/<export-id>.mrc`), shared by the local
//! processor's passes and the Lambda function.
//!
//! 1. Copy the bytes to `received/<institution>/<export-id>.mrc` (if not there yet) —
//!    [`take_export`], or [`take_exports`] for many with one
//!    `BlobStore::copy_if_absent_many` (on the folder store: hard links, one folder sync).
//! 2. Take the stored result of an export imported already, or import it — [`import_export`], or
//!    [`import_exports`] for one institution's exports with one [`Importer::import_batch`]
//!    (one MMS-ID allocation, one durable transaction; records that conflict are decided
//!    again one by one, in order). When the batch as a whole fails, its exports are
//!    imported one by one, so one bad export cannot hold the others back. [`settle`] turns
//!    an export that cannot be imported at all (no profile routes it any more, or it failed
//!    [`MAX_ATTEMPTS`] times) into a stored failure result (`NO_PROFILE`,
//!    `PROCESSING_FAILED`), so every export ends with a stored result whatever the delivery.
//! 3. Write `results/<export-id>.json` and hand the result to the waiting connections (only
//!    with [`ResultDelivery::Documents`]; with [`ResultDelivery::Store`] the stored result is
//!    all the shim reads, and nothing is written) —
//! 4. then delete the inbox object ([`finish_export`], or [`finish_exports`] for many: the
//!    documents with one `BlobStore::put_many`, one folder sync on the folder store).
//!
//! [`process_export`] runs the four for one key. A step starts only after the previous one
//! returned, and every write is durable when it returns. A crash between any two steps
//! leaves the inbox object, so the export is processed again, and every step is
//! idempotent: the copy is `put_if_absent`, a stored result is taken instead of importing
//! again (and [`Importer::import_batch`] falls back to [`Importer::import`], which returns
//! the stored result, if one appears meanwhile), and the result document is overwritten
//! with the same content. So every received record ends with its raw bytes under
//! `received/`, one stored result and (with documents as the delivery) one result
//! document, never with two imports; and a reply given from the stored result after step 2
//! is the one the document will carry.

use bibgate_import::{Importer, Input, Received};
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_store::ImportResult;
use tracing::{info, warn};

use crate::layout::{ResultDoc, export_millis, inbox_key, received_key, result_key};
use crate::services::{ResultDelivery, Services};
use crate::{Error, Result, now_unix};

/// Attempts at an export that keeps failing before a failure result is written (its raw
/// bytes stay under `received/`).
pub const MAX_ATTEMPTS: u32 = 8;

/// An export that is due: where it is in the inbox.
#[derive(Clone, Debug)]
pub struct Due {
    /// The sending institution.
    pub institution: String,
    /// The export id.
    pub export_id: String,
}

/// Stores the result of an export that cannot be imported at all (`NO_PROFILE`,
/// `PROCESSING_FAILED`), as a rejected import with the institution as its zone, and returns
/// its document: so `bibgate result` finds it and a shim polling the store answers it. A
/// result stored for the export meanwhile (its import committed after all) wins. When the
/// store refuses the write, the export is tried again later, unless documents are the
/// delivery: then the document alone carries the failure (the store may be what fails).
fn failure(services: &Services, export: &Taken, text: String, code: &str) -> Result<ResultDoc> {
    let received = received_of(export);
    let result = ImportResult {
        export_id: received.export_id,
        batch_id: None,
        index: None,
        institution: export.institution.clone(),
        zone: export.institution.clone(),
        outcome: bibgate_store::Outcome::Failed,
        trace: vec![format!("{code}: {text}")],
        host_message: text,
        reason_code: code.to_string(),
        mms_id: None,
        oclc_numbers: Vec::new(),
        raw_key: received.raw_key,
        raw_offset: received.raw_offset,
        raw_len: received.raw_len,
        received_unix: received.received_unix,
        decided_unix: now_unix(),
        policy: None,
        retry_of: None,
    };
    let store = &*services.store;
    match store.commit(&bibgate_store::Commit::Reject {
        result: result.clone(),
    }) {
        Ok(()) => Ok(ResultDoc::from_result(&result)),
        Err(bibgate_store::Error::AlreadyExists(_)) => match store.result(&export.export_id)? {
            Some(stored) => Ok(ResultDoc::from_result(&stored)),
            None => Err(Error::Incomplete(format!(
                "the result of export {} exists and cannot be read",
                export.export_id
            ))),
        },
        Err(error) if services.delivery == ResultDelivery::Documents => {
            let export_id = &export.export_id;
            warn!(%export_id, %error, "could not store a failure result; its result document carries it");
            Ok(ResultDoc::from_result(&result))
        }
        Err(error) => Err(error.into()),
    }
}

/// An export after step 1: its bytes, also kept under `raw_key`.
#[derive(Clone, Debug)]
pub struct Taken {
    /// The sending institution.
    pub institution: String,
    /// The export id.
    pub export_id: String,
    /// Where the bytes are kept (`received/<institution>/<export-id>.mrc`).
    pub raw_key: String,
    /// The record bytes as received.
    pub bytes: Vec<u8>,
}

/// Step 1: reads an inbox export and copies it to `received/` (unless it is there already);
/// `None` when the inbox object is gone (another processor took it).
pub fn take_export(
    services: &Services,
    institution: &str,
    export_id: &str,
) -> Result<Option<Taken>> {
    let blobs = &*services.blobs;
    let Some(bytes) = blobs.get(&inbox_key(institution, export_id))? else {
        return Ok(None);
    };
    let raw_key = received_key(institution, export_id);
    blobs.put_if_absent(&raw_key, &bytes)?;
    bibgate_failpoint::point("export.received");
    Ok(Some(Taken {
        institution: institution.to_string(),
        export_id: export_id.to_string(),
        raw_key,
        bytes,
    }))
}

/// Step 1 for many exports at once: reads each inbox export and copies them all to
/// `received/` with one [`BlobStore::copy_if_absent_many`](bibgate_store::BlobStore) (on
/// the folder store: links, and one folder sync per institution). One outcome per export,
/// as [`take_export`] gives it.
pub fn take_exports(services: &Services, due: &[Due]) -> Vec<Result<Option<Taken>>> {
    let blobs = &*services.blobs;
    let mut outcomes: Vec<Result<Option<Taken>>> = Vec::with_capacity(due.len());
    let mut keys: Vec<(String, String)> = Vec::with_capacity(due.len());
    let mut copying: Vec<usize> = Vec::with_capacity(due.len());
    for (i, due) in due.iter().enumerate() {
        let inbox = inbox_key(&due.institution, &due.export_id);
        match blobs.get(&inbox) {
            Ok(Some(bytes)) => {
                let raw_key = received_key(&due.institution, &due.export_id);
                keys.push((inbox, raw_key.clone()));
                copying.push(i);
                outcomes.push(Ok(Some(Taken {
                    institution: due.institution.clone(),
                    export_id: due.export_id.clone(),
                    raw_key,
                    bytes,
                })));
            }
            Ok(None) => outcomes.push(Ok(None)),
            Err(error) => outcomes.push(Err(error.into())),
        }
    }
    let pairs: Vec<(&str, &str)> = keys.iter().map(|(f, t)| (f.as_str(), t.as_str())).collect();
    let copied = blobs.copy_if_absent_many(&pairs);
    for (i, copy) in copying.into_iter().zip(copied) {
        let Some(outcome) = outcomes.get_mut(i) else {
            continue;
        };
        let fallback = match (&copy, &*outcome) {
            // The inbox object went away after it was read (another processor finished
            // it): copy the bytes read instead, as `take_export` does.
            (Err(bibgate_store::Error::NotFound(_)), Ok(Some(taken))) => {
                Some(blobs.put_if_absent(&taken.raw_key, &taken.bytes))
            }
            _ => None,
        };
        if let Err(error) = fallback.unwrap_or(copy) {
            *outcome = Err(error.into());
        }
    }
    bibgate_failpoint::point("export.received");
    outcomes
}

/// The result document to write for an export after step 2: the decided one, a failure
/// document for an export that cannot be routed or failed [`MAX_ATTEMPTS`] times (counting
/// `attempts` earlier failures), or the error (to try again later).
pub fn settle(
    services: &Services,
    export: &Taken,
    attempts: u32,
    outcome: Result<ResultDoc>,
) -> Result<ResultDoc> {
    let Taken {
        institution,
        export_id,
        ..
    } = export;
    match outcome {
        Ok(doc) => Ok(doc),
        Err(error) if error.is_permanent() => {
            warn!(%export_id, %institution, %error, "export cannot be routed");
            failure(services, export, error.to_string(), "NO_PROFILE")
        }
        Err(error) if attempts + 1 >= MAX_ATTEMPTS => {
            warn!(%export_id, %institution, %error, "export failed too often; recording a failure (raw bytes kept)");
            failure(
                services,
                export,
                format!("Import Failed - the record could not be processed: {error}"),
                "PROCESSING_FAILED",
            )
        }
        Err(error) => Err(error),
    }
}

/// Steps 3 and 4: writes the result document, signals the connections waiting for it, and
/// deletes the inbox object.
pub fn finish_export(services: &Services, export: &Taken, doc: &ResultDoc) -> Result<()> {
    finish_exports(services, [(export, doc)])
        .pop()
        .map_or(Ok(()), |(_, outcome)| outcome)
}

/// Steps 3 and 4 for many exports: the result documents with one
/// [`BlobStore::put_many`](bibgate_store::BlobStore) (one folder sync on the folder store;
/// none with [`ResultDelivery::Store`]), the signals, then the inbox deletes. One outcome
/// per export, by export id.
pub fn finish_exports<'a>(
    services: &Services,
    settled: impl IntoIterator<Item = (&'a Taken, &'a ResultDoc)>,
) -> Vec<(String, Result<()>)> {
    let settled: Vec<(&Taken, &ResultDoc)> = settled.into_iter().collect();
    let blobs = &*services.blobs;
    let written: Vec<bibgate_store::Result<()>> = match services.delivery {
        ResultDelivery::Documents => {
            let docs: Vec<(String, Vec<u8>)> = settled
                .iter()
                .map(|(export, doc)| (result_key(&export.export_id), doc.to_json()))
                .collect();
            let items: Vec<(&str, &[u8])> = docs
                .iter()
                .map(|(key, json)| (key.as_str(), json.as_slice()))
                .collect();
            blobs.put_many(&items)
        }
        // Every settled export's result is stored (by its import, or by `failure`).
        ResultDelivery::Store => settled.iter().map(|_| Ok(())).collect(),
    };
    for ((export, doc), outcome) in settled.iter().zip(&written) {
        if outcome.is_ok() {
            services.results.deliver(&export.export_id, doc);
        }
    }
    bibgate_failpoint::point("export.delivered");
    settled
        .iter()
        .zip(written)
        .map(|((export, doc), written)| {
            let export_id = &export.export_id;
            let outcome = written
                .and_then(|()| blobs.delete(&inbox_key(&export.institution, export_id)))
                .map_err(Error::from)
                .map(|_| {
                    info!(
                        %export_id,
                        institution = %export.institution,
                        outcome = %doc.outcome,
                        reason = %doc.reason_code,
                        mms_id = doc.mms_id.as_deref().unwrap_or(""),
                        "export processed"
                    );
                });
            (export_id.clone(), outcome)
        })
        .collect()
}

/// Steps 1-4 for one export on its own (see the module docs). `attempts` counts earlier
/// failures. The processor batches instead; this is the path for one key at a time.
pub fn process_export(
    services: &Services,
    institution: &str,
    export_id: &str,
    attempts: u32,
) -> Result<()> {
    let Some(export) = take_export(services, institution, export_id)? else {
        // Taken by another processor meanwhile.
        return Ok(());
    };
    let doc = settle(
        services,
        &export,
        attempts,
        import_export(services, &export),
    )?;
    finish_export(services, &export, &doc)
}

/// The import input of an export's bytes.
fn input_of(bytes: &[u8]) -> Input {
    match bibgate_marc::parse(bytes, Mode::Lenient, Charset::Auto) {
        Ok(parsed) => Input::Parsed(Box::new(parsed)),
        Err(error) => Input::Unreadable(error.to_string()),
    }
}

/// Where an export came from, for the importer.
fn received_of(export: &Taken) -> Received {
    Received {
        export_id: export.export_id.clone(),
        batch_id: None,
        index: None,
        raw_key: export.raw_key.clone(),
        raw_offset: 0,
        raw_len: export.bytes.len() as u64,
        received_unix: export_millis(&export.institution, &export.export_id)
            .map_or_else(now_unix, |ms| ms / 1000),
    }
}

/// Step 2 for one export: its stored result, or a new import.
pub fn import_export(services: &Services, export: &Taken) -> Result<ResultDoc> {
    let store = &*services.store;
    if let Some(existing) = store.result(&export.export_id)? {
        return Ok(ResultDoc::from_result(&existing));
    }
    let route = bibgate_import::route(store, &export.institution, None)?;
    let result = Importer::with_policies(store, services.policies.as_deref()).import(
        &route,
        &input_of(&export.bytes),
        &received_of(export),
        now_unix(),
    )?;
    Ok(ResultDoc::from_result(&result))
}

/// Step 2 for exports of one institution: the stored results of those imported already,
/// one [`Importer::import_batch`] for the others. The outcomes are in the order of
/// `exports`. When the batch fails as a whole, each of its exports is decided on its own
/// ([`import_export`]), so that one export's error stays its own.
pub fn import_exports(
    services: &Services,
    institution: &str,
    exports: &[Taken],
) -> Vec<Result<ResultDoc>> {
    let store = &*services.store;
    let mut outcomes: Vec<Option<Result<ResultDoc>>> = Vec::with_capacity(exports.len());
    let mut fresh = Vec::new();
    for (i, export) in exports.iter().enumerate() {
        match store.result(&export.export_id) {
            Ok(Some(existing)) => outcomes.push(Some(Ok(ResultDoc::from_result(&existing)))),
            Ok(None) => {
                outcomes.push(None);
                fresh.push(i);
            }
            Err(error) => outcomes.push(Some(Err(error.into()))),
        }
    }
    if !fresh.is_empty() {
        let batch = || -> Result<Vec<ImportResult>> {
            let route = bibgate_import::route(store, institution, None)?;
            let inputs: Vec<(Input, Received)> = fresh
                .iter()
                .filter_map(|&i| exports.get(i))
                .map(|export| (input_of(&export.bytes), received_of(export)))
                .collect();
            let results = Importer::with_policies(store, services.policies.as_deref())
                .import_batch(&route, &inputs, now_unix())?;
            if results.len() != inputs.len() {
                return Err(Error::Incomplete(format!(
                    "the batch import returned {} results for {} exports",
                    results.len(),
                    inputs.len()
                )));
            }
            Ok(results)
        };
        match batch() {
            Ok(results) => {
                for (&i, result) in fresh.iter().zip(&results) {
                    if let Some(slot) = outcomes.get_mut(i) {
                        *slot = Some(Ok(ResultDoc::from_result(result)));
                    }
                }
            }
            Err(error) => {
                if fresh.len() > 1 {
                    warn!(%institution, exports = fresh.len(), %error, "a batch import failed; importing its exports one by one");
                }
                for &i in &fresh {
                    if let (Some(slot), Some(export)) = (outcomes.get_mut(i), exports.get(i)) {
                        *slot = Some(import_export(services, export));
                    }
                }
            }
        }
    }
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or_else(|| Err(Error::Incomplete("an export was not decided".into())))
        })
        .collect()
}
