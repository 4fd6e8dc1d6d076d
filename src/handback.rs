//! Batches handed to another thread come back to the thread that filled
//! them, which frees their contents and fills them again (issue 15).
//!
//! mimalloc frees a block on the thread that allocated it at the cost of a
//! few instructions; freed on another thread, the block goes on a shared
//! list that its owner must collect later, at several times the cost.
//! Where a thread makes millions of small values that another consumes
//! (the changes `show` reads ahead, the rows the store reads, the changes
//! the spool writes), that was a third of the consumer's time (`perf`).
//! Handing the batch back also saves allocating the next one.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// How many batches may be on their way back; more are freed where they
/// are, as before.
const WAITING: usize = 8;

/// The consumer's end: gives a batch back once done with it.
pub(crate) struct GiveBack<T>(SyncSender<Vec<T>>);

/// The producer's end: the next batch to fill.
pub(crate) struct Batches<T> {
    given_back: Receiver<Vec<T>>,
    capacity: usize,
}

/// A pair of ends for batches of `capacity` items.
pub(crate) fn channel<T>(capacity: usize) -> (GiveBack<T>, Batches<T>) {
    let (to, given_back) = sync_channel(WAITING);
    (
        GiveBack(to),
        Batches {
            given_back,
            capacity,
        },
    )
}

impl<T> GiveBack<T> {
    /// Sends `batch` back to be freed by its producer; frees it here when
    /// the producer is gone or has enough waiting.
    pub(crate) fn give_back(&self, batch: Vec<T>) {
        // Either error hands the batch back in it, dropped here.
        let _ = self.0.try_send(batch);
    }
}

impl<T> Batches<T> {
    /// An empty batch: one given back, its contents freed here, or a new one.
    pub(crate) fn next(&self) -> Vec<T> {
        match self.given_back.try_recv() {
            Ok(mut used) => {
                used.clear();
                used
            }
            Err(_) => Vec::with_capacity(self.capacity),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Counts where it is dropped.
    struct Tracked(Arc<AtomicUsize>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_batch_given_back_is_emptied_by_its_producer_and_filled_again() {
        let (back, batches) = channel::<Tracked>(4);
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut batch = batches.next();
        assert_eq!(batch.capacity(), 4);
        batch.push(Tracked(Arc::clone(&dropped)));
        batch.push(Tracked(Arc::clone(&dropped)));
        let consumer = std::thread::spawn(move || {
            back.give_back(batch);
            back
        });
        let back = consumer.join().expect("the consumer ran");
        // Not dropped on the consumer's thread: still in the batch.
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
        let reused = batches.next();
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
        assert!(reused.is_empty());
        assert_eq!(reused.capacity(), 4);
        // Nothing waiting: a new batch.
        assert!(batches.next().is_empty());
        // More than may wait: freed by the consumer, none lost.
        for _ in 0..WAITING + 3 {
            back.give_back(vec![Tracked(Arc::clone(&dropped))]);
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 2 + 3);
        // The producer gone: what waited is freed with it, and so is
        // what comes back after.
        drop(batches);
        assert_eq!(dropped.load(Ordering::Relaxed), 2 + 3 + WAITING);
        back.give_back(vec![Tracked(Arc::clone(&dropped))]);
        assert_eq!(dropped.load(Ordering::Relaxed), 2 + 3 + WAITING + 1);
    }
}
