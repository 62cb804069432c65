//! Group commit: one thread flushes sled for every waiter that queued up while the last flush ran.

use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::{Error, Result};

type Waiter = oneshot::Sender<Result<()>>;

pub struct Flusher {
    /// Waiters queue here; the flusher takes all that are queued, flushes once, and answers each.
    /// `None` only while dropping.
    waiters: Option<mpsc::Sender<Waiter>>,
    /// Joined on drop, so that a closed store has let go of its files before anyone reopens them.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    pub fn start(db: sled::Db, max_group_commit: usize) -> Self {
        let (waiters, rx) = mpsc::channel::<Waiter>();
        let thread = std::thread::Builder::new()
            .name("eventlog-flusher".into())
            .spawn(move || run(db, rx, max_group_commit))
            .expect("spawning the flusher thread");
        Self { waiters: Some(waiters), thread: Some(thread) }
    }

    /// Resolves once everything written before the call is on disk.
    pub async fn request(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let waiters = self.waiters.as_ref().ok_or(Error::Closed)?;
        waiters.send(tx).map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
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

fn run(db: sled::Db, rx: mpsc::Receiver<Waiter>, max_group_commit: usize) {
    let mut group = Vec::with_capacity(max_group_commit);
    // The loop ends when every sender is gone, that is when the store is dropped.
    while let Ok(first) = rx.recv() {
        group.push(first);
        while group.len() < max_group_commit {
            match rx.try_recv() {
                Ok(waiter) => group.push(waiter),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let outcome = db.flush().map(|_| ());
        metrics::histogram!("eventlog_flush_duration_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("eventlog_group_commit_size").record(group.len() as f64);
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "event log flush failed");
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
