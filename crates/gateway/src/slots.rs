//! Connection slots: the per-address cap, and which connections make room when the budget
//! is spent (those that have had their reply first, oldest first).
//!
//! The overall budget is the server's semaphore; this keeps the count per source address,
//! the connections waiting for a slot of their address ([`QUEUE_PER_CAP`] times the cap per
//! address, as many as the budget in all, for a while: many cataloguers behind one address
//! exporting at once are served in turn, not refused),
//! and the connections that only wait for their client to close after the reply.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

/// Connections that may wait for a slot of their address, in multiples of the cap.
pub(crate) const QUEUE_PER_CAP: usize = 3;

/// The connections of one server, by source address.
#[derive(Debug)]
pub(crate) struct Slots {
    per_address: usize,
    /// Connections that may wait for a slot, all addresses together.
    max_waiting: usize,
    inner: Mutex<Inner>,
    /// Woken whenever a slot is freed.
    freed: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    /// The key of the next connection that had its reply.
    next: u64,
    open: HashMap<IpAddr, Open>,
    /// Connections waiting for a slot, all addresses together.
    waiting: usize,
    /// Connections waiting after their reply, oldest first, with what tells them to close.
    replied: BTreeMap<u64, (IpAddr, Arc<Notify>)>,
    /// The accept loop waits for a free slot: a connection replied to now closes at once.
    short: bool,
}

#[derive(Debug, Default)]
struct Open {
    count: usize,
    /// Connections waiting for a slot.
    waiting: usize,
    /// A refusal was logged since the address reached its cap.
    refused: bool,
}

/// What refusing a connection means for the log.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The first since the address reached its cap (log it).
    First,
    /// A further one.
    Again,
}

/// A connection waiting for a slot of its address ([`Slots::wait`]).
#[derive(Debug)]
pub(crate) struct Queued {
    slots: Arc<Slots>,
    ip: IpAddr,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
    /// Its key among the replied connections while it waits after a reply.
    replied: Option<u64>,
    close: Arc<Notify>,
}

impl Slots {
    /// Slots for `per_address` connections per address; `max_waiting` may wait in all.
    pub(crate) fn new(per_address: usize, max_waiting: usize) -> Arc<Slots> {
        Arc::new(Slots {
            per_address: per_address.max(1),
            max_waiting,
            inner: Mutex::new(Inner::default()),
            freed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a connection from `ip`. At the address's cap, its oldest connection that had
    /// its reply is told to close to make room; when it has none, the new one is not
    /// admitted (it may [`Slots::queue`]).
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut inner = self.lock();
        let count = inner.open.get(&ip).map_or(0, |open| open.count);
        if count >= self.per_address {
            let oldest = inner
                .replied
                .iter()
                .find(|(_, (address, _))| *address == ip)
                .map(|(key, _)| *key);
            match oldest.and_then(|key| inner.replied.remove(&key)) {
                Some((_, close)) => close.notify_one(),
                None => return None,
            }
        }
        inner.open.entry(ip).or_default().count += 1;
        Some(Slot {
            slots: self.clone(),
            ip,
            replied: None,
            close: Arc::new(Notify::new()),
        })
    }

    /// Queues a connection [`Slots::admit`] did not admit, to wait for a slot of its
    /// address; refused when [`QUEUE_PER_CAP`] times the cap wait already, or the most
    /// that may wait in all.
    pub(crate) fn queue(self: &Arc<Self>, ip: IpAddr) -> Result<Queued, Refusal> {
        let mut inner = self.lock();
        let room = inner.waiting < self.max_waiting;
        let open = inner.open.entry(ip).or_default();
        if room && open.waiting < self.per_address * QUEUE_PER_CAP {
            open.waiting += 1;
            inner.waiting += 1;
            return Ok(Queued {
                slots: self.clone(),
                ip,
            });
        }
        let first = !open.refused;
        open.refused = true;
        Err(if first {
            Refusal::First
        } else {
            Refusal::Again
        })
    }

    /// Waits until the queued connection's address has a slot for it, at most until
    /// `until`.
    pub(crate) async fn wait(&self, queued: Queued, until: Instant) -> Option<Slot> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(slot) = queued.slots.admit(queued.ip) {
                return Some(slot);
            }
            tokio::select! {
                () = freed => {}
                () = tokio::time::sleep_until(until) => return None,
            }
        }
    }

    /// The budget is spent and the accept loop waits: the oldest connection that had its
    /// reply is told to close, and connections replied to from now on close at once.
    pub(crate) fn short(&self) {
        let mut inner = self.lock();
        inner.short = true;
        if let Some((_, (_, close))) = inner.replied.pop_first() {
            close.notify_one();
        }
    }

    /// The accept loop got a slot.
    pub(crate) fn not_short(&self) {
        self.lock().short = false;
    }

    /// Connections open from `ip`.
    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        self.lock().open.get(&ip).map_or(0, |open| open.count)
    }
}

impl Slot {
    /// The connection had its reply and waits for its client to close: it may be told to
    /// close to make room ([`Slot::evicted`]). False when slots are short: close it now.
    pub(crate) fn replied(&mut self) -> bool {
        let mut inner = self.slots.lock();
        if inner.short {
            return false;
        }
        if self.replied.is_none() {
            let key = inner.next;
            inner.next += 1;
            inner.replied.insert(key, (self.ip, self.close.clone()));
            self.replied = Some(key);
        }
        true
    }

    /// A further request started on the connection: it no longer makes room.
    pub(crate) fn busy(&mut self) {
        if let Some(key) = self.replied.take() {
            self.slots.lock().replied.remove(&key);
        }
    }

    /// Completes when the connection is to close to make room.
    pub(crate) async fn evicted(&self) {
        self.close.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.slots.lock();
        if let Some(key) = self.replied.take() {
            inner.replied.remove(&key);
        }
        if let Some(open) = inner.open.get_mut(&self.ip) {
            open.count = open.count.saturating_sub(1);
            if open.count == 0 && open.waiting == 0 {
                inner.open.remove(&self.ip);
            } else if open.count < self.slots.per_address {
                open.refused = false;
            }
        }
        drop(inner);
        self.slots.freed.notify_waiters();
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        let mut inner = self.slots.lock();
        inner.waiting = inner.waiting.saturating_sub(1);
        if let Some(open) = inner.open.get_mut(&self.ip) {
            open.waiting = open.waiting.saturating_sub(1);
            if open.count == 0 && open.waiting == 0 {
                inner.open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    async fn told_to_close(slot: &Slot) -> bool {
        tokio::time::timeout(Duration::from_millis(20), slot.evicted())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn an_address_at_its_cap_queues_then_is_refused_unless_one_of_its_connections_had_its_reply()
     {
        let slots = Slots::new(2, 100);
        let mut a = slots.admit(ip(1)).unwrap();
        let b = slots.admit(ip(1)).unwrap();
        assert!(slots.admit(ip(1)).is_none());
        let queued: Vec<Queued> = (0..6).map(|_| slots.queue(ip(1)).unwrap()).collect();
        assert_eq!(slots.queue(ip(1)).unwrap_err(), Refusal::First);
        assert_eq!(slots.queue(ip(1)).unwrap_err(), Refusal::Again);
        drop(queued);
        // Another address is not affected.
        let other = slots.admit(ip(2)).unwrap();
        // A connection that had its reply makes room for its own address.
        assert!(a.replied());
        let c = slots.admit(ip(1)).unwrap();
        assert!(told_to_close(&a).await);
        assert!(!told_to_close(&b).await);
        drop(a);
        assert_eq!(slots.open(ip(1)), 2);
        drop((b, c));
        assert_eq!(slots.open(ip(1)), 0);
        // The count starts again: a refusal is logged again once the cap is reached.
        let _d = slots.admit(ip(1)).unwrap();
        let _e = slots.admit(ip(1)).unwrap();
        let _queued: Vec<Queued> = (0..6).map(|_| slots.queue(ip(1)).unwrap()).collect();
        assert_eq!(slots.queue(ip(1)).unwrap_err(), Refusal::First);
        drop(other);
    }

    #[tokio::test]
    async fn a_queued_connection_gets_the_next_free_slot_of_its_address_or_gives_up() {
        let slots = Slots::new(1, 100);
        let first = slots.admit(ip(1)).unwrap();
        let queued = slots.queue(ip(1)).unwrap();
        let waiting = {
            let slots = slots.clone();
            tokio::spawn(async move {
                slots
                    .wait(queued, Instant::now() + Duration::from_secs(5))
                    .await
                    .is_some()
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        assert!(waiting.await.unwrap());
        assert_eq!(slots.open(ip(1)), 0);
        let _held = slots.admit(ip(1)).unwrap();
        let queued = slots.queue(ip(1)).unwrap();
        let gave_up = slots
            .wait(queued, Instant::now() + Duration::from_millis(20))
            .await;
        assert!(gave_up.is_none());
        assert_eq!(slots.open(ip(1)), 1);
        // At most `max_waiting` wait in all.
        let few = Slots::new(1, 2);
        let _held: Vec<Slot> = (1..=3).map(|i| few.admit(ip(i)).unwrap()).collect();
        let _queued = (few.queue(ip(1)).unwrap(), few.queue(ip(2)).unwrap());
        assert_eq!(few.queue(ip(3)).unwrap_err(), Refusal::First);
    }

    #[tokio::test]
    async fn when_short_the_oldest_replied_connection_closes_and_new_replies_close_at_once() {
        let slots = Slots::new(8, 100);
        let mut old = slots.admit(ip(1)).unwrap();
        let mut newer = slots.admit(ip(2)).unwrap();
        let mut busy = slots.admit(ip(3)).unwrap();
        assert!(old.replied());
        assert!(newer.replied());
        assert!(busy.replied());
        busy.busy();
        slots.short();
        assert!(told_to_close(&old).await);
        assert!(!told_to_close(&newer).await);
        assert!(!told_to_close(&busy).await);
        let mut late = slots.admit(ip(4)).unwrap();
        assert!(!late.replied(), "replied while short: close at once");
        slots.not_short();
        assert!(late.replied());
    }
}
