//! The ports the shim and the processor share.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use bibgate_store::{BlobStore, Store};
use tokio::sync::Notify;

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
    /// Signalled by the processor when an export's result is stored (committed durably in
    /// `store`), and again when its result document is written.
    pub results: Arc<ResultSignals>,
    /// Runs institutions' merge policies in the processor (`None`: no policies).
    pub policies: Option<Arc<dyn bibgate_import::PolicyRunner>>,
    /// Where the shim finds an export's result, and so whether the processor writes result
    /// documents. The shim and the processor must be given the same.
    pub delivery: ResultDelivery,
}

/// Where the shim finds an export's result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResultDelivery {
    /// `results/<export-id>.json` in the blob store: the processor writes one per export and
    /// the shim polls for it (and looks at the stored result after a signal, and at the
    /// reply deadline). For a processor whose store the shim does not poll: the Lambda
    /// function writes the documents to S3.
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
            delivery: ResultDelivery::default(),
        }
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

/// Per-export wake-ups for the shim's result polling: the processor signals an export
/// once its result is stored and again after step 3 (its result document written), so
/// only the connections waiting for that export look again (after a signal, at the stored
/// result first: a result the store returns is durable, exactly what the document will say).
#[derive(Debug, Default)]
pub struct ResultSignals {
    waiting: Mutex<HashMap<String, (Arc<Notify>, usize)>>,
}

impl ResultSignals {
    /// Registers interest in an export; pair with [`ResultSignals::unsubscribe`].
    pub fn subscribe(&self, export_id: &str) -> Arc<Notify> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = waiting
            .entry(export_id.to_string())
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        entry.0.clone()
    }

    /// Drops one registration.
    pub fn unsubscribe(&self, export_id: &str) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = waiting.get_mut(export_id) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                waiting.remove(export_id);
            }
        }
    }

    /// Wakes everyone waiting for `export_id`.
    pub fn notify(&self, export_id: &str) {
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((notify, _)) = waiting.get(export_id) {
            notify.notify_waiters();
        }
    }
}

/// Runs a blocking closure (storage, password hashing) on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> crate::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::Error::Task(e.to_string()))
}
