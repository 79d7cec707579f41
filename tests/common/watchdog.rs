//! Turns a hang into a failure: if a test makes no progress for a while, print what it
//! was doing and exit the process (a hung test would otherwise block CI forever).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Progress reporting for one long-running test.
#[derive(Debug)]
pub struct Watchdog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    beats: AtomicU64,
    doing: Mutex<String>,
    done: AtomicU64,
}

impl Watchdog {
    /// Starts watching: exits the process if [`Watchdog::beat`] is not called for `limit`.
    pub fn start(limit: Duration) -> Self {
        let inner = Arc::new(Inner {
            beats: AtomicU64::new(0),
            doing: Mutex::new("starting".into()),
            done: AtomicU64::new(0),
        });
        let watched = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                let mut last = watched.beats.load(Ordering::SeqCst);
                let mut since = Instant::now();
                while watched.done.load(Ordering::SeqCst) == 0 {
                    // The watchdog is the one place a test waits on wall time: it only
                    // decides when to give up, never what a result should be.
                    std::thread::park_timeout(Duration::from_millis(200));
                    let now = watched.beats.load(Ordering::SeqCst);
                    if now != last {
                        last = now;
                        since = Instant::now();
                    } else if since.elapsed() > limit {
                        let doing = watched
                            .doing
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .clone();
                        eprintln!("HANG: no progress for {limit:?} while: {doing}");
                        std::process::exit(3);
                    }
                }
            })
            .expect("spawn watchdog");
        Watchdog { inner }
    }

    /// Records progress and what comes next.
    pub fn beat(&self, doing: impl Into<String>) {
        let doing = doing.into();
        super::note_activity(&doing);
        *self.inner.doing.lock().unwrap_or_else(|p| p.into_inner()) = doing;
        self.inner.beats.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.inner.done.store(1, Ordering::SeqCst);
    }
}
