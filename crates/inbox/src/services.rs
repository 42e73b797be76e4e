//! The ports the shim and the processors share.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use bibgate_store::{BlobStore, Store};
use tokio::sync::Notify;

use crate::layout::ResultDoc;

/// What the shim and the processor work with: the two storage ports and two in-process
/// signals that only lower latency (everything also works by polling, as it must when the
/// processor runs elsewhere).
#[derive(Clone)]
pub struct Services {
    /// Records, profiles, results.
    pub store: Arc<dyn Store>,
    /// The inbox, results, drop folders and kept raw bytes.
    pub blobs: Arc<dyn BlobStore>,
    /// Notified by the shim after it wrote to the inbox: the processor looks at once.
    pub wake: Arc<Notify>,
    /// Given each export's result by the processor when it is stored (committed durably in
    /// `store`), and again when its result document is written.
    pub results: Arc<ResultSignals>,
    /// Runs institutions' merge policies in the processor (`None`: no policies).
    pub policies: Option<Arc<dyn bibgate_import::PolicyRunner>>,
    /// The logon locks every shim process shares (`None`: each shim keeps its own, in
    /// memory, and `bibgate profile unlock` cannot reach them).
    pub logon_locks: Option<Arc<dyn bibgate_store::LogonLocks>>,
    /// Where the shim finds an export's result, and so whether the processor writes result
    /// documents. The shim and the processor must be given the same.
    pub delivery: ResultDelivery,
}

/// Where the shim finds an export's result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResultDelivery {
    /// `results/<export-id>.json` in the blob store: the processor writes one per export and
    /// the shim polls for it (and looks at the stored result once at the reply deadline).
    /// For a processor whose store the shim does not poll: the Lambda function writes the
    /// documents to S3.
    #[default]
    Documents,
    /// The stored result ([`Store::result`]) alone: the processor writes no result
    /// documents and the shim polls the store. For the embedded backend, where the shim and
    /// the processor open the same database: one file fewer per export.
    Store,
}

impl Services {
    /// Services over two ports, with fresh signals.
    pub fn new(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) -> Services {
        Services {
            store,
            blobs,
            wake: Arc::new(Notify::new()),
            results: Arc::new(ResultSignals::default()),
            policies: None,
            logon_locks: None,
            delivery: ResultDelivery::default(),
        }
    }

    /// The same services, sharing logon locks through `locks`.
    pub fn with_logon_locks(mut self, locks: Arc<dyn bibgate_store::LogonLocks>) -> Services {
        self.logon_locks = Some(locks);
        self
    }

    /// The same services, delivering results through `delivery`.
    pub fn with_delivery(mut self, delivery: ResultDelivery) -> Services {
        self.delivery = delivery;
        self
    }

    /// The same services, with the processor running merge policies through `policies`.
    pub fn with_policies(mut self, policies: Arc<dyn bibgate_import::PolicyRunner>) -> Services {
        self.policies = Some(policies);
        self
    }
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Services")
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

/// Per-export hand-over of results from an in-process processor to the shim's connections
/// waiting for them: the processor delivers an export's result once it is stored (committed
/// durably) and again after step 3 (its result document written, when documents are the
/// delivery). Only the connections waiting for that export wake up, and they answer from
/// the result handed over — what the store, or the document, now holds — without reading
/// it back. Nobody waiting: nothing is kept.
#[derive(Debug, Default)]
pub struct ResultSignals {
    waiting: Mutex<HashMap<String, Waiting>>,
}

/// The connections waiting for one export.
#[derive(Debug)]
struct Waiting {
    notify: Arc<Notify>,
    count: usize,
    /// The result delivered, once it is durable.
    result: Option<ResultDoc>,
}

impl ResultSignals {
    /// Registers interest in an export; pair with [`ResultSignals::unsubscribe`].
    pub fn subscribe(&self, export_id: &str) -> Arc<Notify> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = waiting
            .entry(export_id.to_string())
            .or_insert_with(|| Waiting {
                notify: Arc::new(Notify::new()),
                count: 0,
                result: None,
            });
        entry.count += 1;
        entry.notify.clone()
    }

    /// Drops one registration.
    pub fn unsubscribe(&self, export_id: &str) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = waiting.get_mut(export_id) {
            entry.count = entry.count.saturating_sub(1);
            if entry.count == 0 {
                waiting.remove(export_id);
            }
        }
    }

    /// Hands `result` to everyone waiting for `export_id` and wakes them. Call it only once
    /// the result is durable where the shim would otherwise find it.
    pub fn deliver(&self, export_id: &str, result: &ResultDoc) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = waiting.get_mut(export_id) {
            entry.result = Some(result.clone());
            entry.notify.notify_waiters();
        }
    }

    /// The result delivered for `export_id` to its waiting connections, if any.
    pub fn delivered(&self, export_id: &str) -> Option<ResultDoc> {
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        waiting
            .get(export_id)
            .and_then(|entry| entry.result.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(export_id: &str, host_message: &str) -> ResultDoc {
        ResultDoc {
            export_id: export_id.into(),
            institution: "01TEST".into(),
            outcome: "added".into(),
            host_message: host_message.into(),
            reason_code: "ADDED".into(),
            mms_id: Some("991000001".into()),
            oclc_numbers: vec![1],
            raw_key: format!("received/01TEST/{export_id}.mrc"),
        }
    }

    #[tokio::test]
    async fn a_delivered_result_reaches_every_waiting_connection() {
        let signals = ResultSignals::default();
        let first = signals.subscribe("e1");
        let second = signals.subscribe("e1");
        let woken = tokio::spawn(async move {
            tokio::join!(first.notified(), second.notified());
        });
        // Let both waits register before delivering (notify_waiters wakes only those).
        tokio::task::yield_now().await;
        while !woken.is_finished() {
            signals.deliver("e1", &doc("e1", "Record added"));
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        woken.await.unwrap();
        assert_eq!(signals.delivered("e1"), Some(doc("e1", "Record added")));
        assert_eq!(signals.delivered("e2"), None);
        // One connection leaves: the other still finds the result.
        signals.unsubscribe("e1");
        assert_eq!(signals.delivered("e1"), Some(doc("e1", "Record added")));
        // The last leaves: nothing is kept.
        signals.unsubscribe("e1");
        assert_eq!(signals.delivered("e1"), None);
    }

    #[test]
    fn a_result_nobody_waits_for_is_not_kept() {
        let signals = ResultSignals::default();
        signals.deliver("e1", &doc("e1", "Record added"));
        let _signal = signals.subscribe("e1");
        assert_eq!(signals.delivered("e1"), None);
        assert!(signals.waiting.lock().unwrap()["e1"].result.is_none());
    }
}
