//! Progress of the long phases, shown on a terminal only: rows read, rows
//! written. The store counts into process-wide counters (one relaxed
//! atomic add, nothing else: it knows nothing of terminals); a small thread
//! of the command's [`Progress`] reads them into an indicatif bar.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static ROWS_READ: AtomicU64 = AtomicU64::new(0);
static ROWS_WRITTEN: AtomicU64 = AtomicU64::new(0);

/// The store read `n` more rows.
pub fn rows_read(n: u64) {
    ROWS_READ.fetch_add(n, Ordering::Relaxed);
}

/// The store wrote `n` more rows.
pub fn rows_written(n: usize) {
    ROWS_WRITTEN.fetch_add(n as u64, Ordering::Relaxed);
}

/// What a phase counts.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    RowsRead,
    RowsWritten,
}

impl Counter {
    fn value(self) -> u64 {
        match self {
            Counter::RowsRead => ROWS_READ.load(Ordering::Relaxed),
            Counter::RowsWritten => ROWS_WRITTEN.load(Ordering::Relaxed),
        }
    }
}

/// Progress on stderr, one phase at a time, when stderr is a terminal;
/// nothing at all otherwise (pipes, logs, CI). Cleared before the command
/// prints its result, so that no spinner is left behind.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// The phase's counter and its value when the phase began.
    counting: Arc<std::sync::Mutex<Option<(Counter, u64)>>>,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub fn on_terminal() -> Progress {
        use std::io::IsTerminal;
        let mut progress = Progress {
            bar: None,
            counting: Arc::default(),
            stop: Arc::default(),
            ticker: None,
        };
        if !std::io::stderr().is_terminal() {
            return progress;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.enable_steady_tick(Duration::from_millis(120));
        let (b, counting, stop) = (
            bar.clone(),
            progress.counting.clone(),
            progress.stop.clone(),
        );
        progress.ticker = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some((counter, base)) = *counting.lock().unwrap_or_else(|e| e.into_inner()) {
                    b.set_position(counter.value().saturating_sub(base));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
        progress.bar = Some(bar);
        progress
    }

    fn set_counting(&self, counting: Option<(Counter, u64)>) {
        *self.counting.lock().unwrap_or_else(|e| e.into_inner()) = counting;
    }

    /// A phase without a count: a spinner, its name and the time it takes.
    pub fn phase(&self, what: &str) {
        self.set_counting(None);
        if let Some(bar) = &self.bar {
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .expect("a valid template"),
            );
            bar.set_length(0);
            bar.reset();
            bar.set_message(what.to_string());
        }
    }

    /// A phase that counts rows: the count and the rate, and with a known
    /// `total`, a bar and the time left.
    pub fn counted(&self, what: &str, counter: Counter, total: Option<u64>) {
        self.set_counting(Some((counter, counter.value())));
        if let Some(bar) = &self.bar {
            let template = if total.is_some() {
                "{spinner} {msg} [{wide_bar}] {human_pos}/{human_len} rows, {per_sec}, {eta} left"
            } else {
                "{spinner} {msg}: {human_pos} rows, {per_sec} ({elapsed})"
            };
            bar.set_style(ProgressStyle::with_template(template).expect("a valid template"));
            bar.reset();
            bar.set_length(total.unwrap_or(0));
            bar.set_position(0);
            bar.set_message(what.to_string());
        }
    }

    /// Clears the bar before the command prints its result.
    pub fn finish(&self) {
        self.set_counting(None);
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}
