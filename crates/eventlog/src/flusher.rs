//! Group commit: one thread flushes sled for every waiter that queued up while the last flush ran.
//!
//! Appends are numbered as they are applied ([`Flusher::written`]), and each flush records the
//! number it covered, so a waiter whose writes a finished flush already covered needs no flush of
//! its own: waiting for durability costs nothing when nothing is waiting to be flushed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};

use tokio::sync::oneshot;

use crate::{Error, Result};

type Waiter = oneshot::Sender<Result<()>>;

pub struct Flusher {
    /// Waiters queue here; the flusher takes all that are queued, flushes once, and answers each.
    /// `None` only while dropping.
    waiters: Option<mpsc::Sender<Waiter>>,
    marks: Arc<Marks>,
    /// Joined on drop, so that a closed store has let go of its files before anyone reopens them.
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How far writing and flushing have come, and whether flushes are held (see [`FlushHold`]).
#[derive(Default)]
struct Marks {
    /// The number of the last append applied to the store.
    written: AtomicU64,
    /// The number of the last append a finished flush covered.
    flushed: AtomicU64,
    /// How many [`FlushHold`]s are alive; the flusher waits while there are any.
    holds: Mutex<usize>,
    released: Condvar,
}

impl Flusher {
    pub fn start(db: sled::Db, max_group_commit: usize) -> Self {
        let (waiters, rx) = mpsc::channel::<Waiter>();
        let marks = Arc::new(Marks::default());
        let thread = {
            let marks = marks.clone();
            std::thread::Builder::new()
                .name("eventlog-flusher".into())
                .spawn(move || run(db, rx, &marks, max_group_commit))
                .expect("spawning the flusher thread")
        };
        Self { waiters: Some(waiters), marks, thread: Some(thread) }
    }

    /// Numbers an append that was just applied; called after it is visible, so a flush that
    /// starts after this covers it.
    pub fn written(&self) -> u64 {
        self.marks.written.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The number of the last append applied so far.
    pub fn last_written(&self) -> u64 {
        self.marks.written.load(Ordering::SeqCst)
    }

    /// Resolves once the append numbered `mark`, and every one before it, is on disk.
    pub async fn request(&self, mark: u64) -> Result<()> {
        if self.marks.flushed.load(Ordering::SeqCst) >= mark {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        let waiters = self.waiters.as_ref().ok_or(Error::Closed)?;
        waiters.send(tx).map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    pub fn hold(&self) -> FlushHold {
        *self.marks.holds.lock().expect("flush holds lock") += 1;
        FlushHold { marks: self.marks.clone() }
    }
}

/// While alive, no flush starts: appends stay visible but never become durable, so a test can
/// see what waits for durability and what does not.
#[must_use = "flushes resume when the hold is dropped"]
pub struct FlushHold {
    marks: Arc<Marks>,
}

impl Drop for FlushHold {
    fn drop(&mut self) {
        *self.marks.holds.lock().expect("flush holds lock") -= 1;
        self.marks.released.notify_all();
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop after it answers whoever is still queued.
        self.waiters.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(db: sled::Db, rx: mpsc::Receiver<Waiter>, marks: &Marks, max_group_commit: usize) {
    let mut group = Vec::with_capacity(max_group_commit);
    // The loop ends when every sender is gone, that is when the store is dropped.
    while let Ok(first) = rx.recv() {
        let holds = marks.holds.lock().expect("flush holds lock");
        drop(marks.released.wait_while(holds, |holds| *holds > 0).expect("flush holds lock"));
        group.push(first);
        while group.len() < max_group_commit {
            match rx.try_recv() {
                Ok(waiter) => group.push(waiter),
                Err(_) => break,
            }
        }
        // Everything numbered up to here was applied before the flush starts, so it covers them.
        let covered = marks.written.load(Ordering::SeqCst);
        let started = std::time::Instant::now();
        let outcome = db.flush().map(|_| ());
        metrics::histogram!("eventlog_flush_duration_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("eventlog_group_commit_size").record(group.len() as f64);
        match &outcome {
            Ok(()) => {
                marks.flushed.fetch_max(covered, Ordering::SeqCst);
            }
            Err(e) => tracing::error!(error = %e, "event log flush failed"),
        }
        for waiter in group.drain(..) {
            let reply = match &outcome {
                Ok(()) => Ok(()),
                Err(e) => Err(Error::Storage(e.clone())),
            };
            // A waiter that gave up is no concern of ours.
            let _ = waiter.send(reply);
        }
    }
}
