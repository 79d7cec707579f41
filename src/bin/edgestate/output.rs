//! Output: JSON, a progress line on terminals, files or stdout, and small formatting
//! helpers.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use edgestate::export::{Family, RecordView};
use edgestate::Store;

use crate::failure::{io_failure, Failure, EXIT_FAILURE};

pub(crate) fn print_json(value: &serde_json::Value, pretty: bool) -> Result<(), Failure> {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    }
    .map_err(|e| Failure::new(EXIT_FAILURE, e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// A progress line on stderr, only when stderr is a terminal.
pub(crate) struct Progress {
    label: &'static str,
    total: Option<u64>,
    enabled: bool,
    last: Option<Instant>,
    shown: bool,
}

impl Progress {
    pub(crate) fn new(label: &'static str, total: Option<u64>) -> Self {
        Progress {
            label,
            total,
            enabled: std::io::stderr().is_terminal(),
            last: None,
            shown: false,
        }
    }

    pub(crate) fn update(&mut self, done: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(now);
        self.shown = true;
        let mut err = std::io::stderr();
        let _ = match self.total {
            Some(total) if total > 0 => {
                let pct = done.saturating_mul(100) / total;
                let filled = usize::try_from(pct.min(100) / 5).unwrap_or(20);
                write!(
                    err,
                    "\r{} [{}{}] {done}/{total}",
                    self.label,
                    "#".repeat(filled),
                    " ".repeat(20 - filled)
                )
            }
            _ => write!(err, "\r{} {done}", self.label),
        };
        let _ = err.flush();
    }

    pub(crate) fn finish(&mut self) {
        if self.shown {
            eprintln!();
        }
    }
}

pub(crate) fn record_total(store: &Store) -> Option<u64> {
    let stats = store.stats().ok()?;
    Some(Family::ALL.iter().map(|f| stats.records(f.table())).sum())
}

/// An output file, or stdout.
pub(crate) fn output(path: Option<&Path>) -> Result<Box<dyn Write>, Failure> {
    Ok(match path {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).map_err(|e| io_failure(p, &e))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    })
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub(crate) fn expiry_text(view: &RecordView) -> String {
    match view.expires_at_ms {
        None => "-".to_owned(),
        Some(at) if view.expired => format!("{at} (expired)"),
        Some(at) => at.to_string(),
    }
}

pub(crate) fn file_sizes(path: &Path) -> (u64, u64) {
    let Ok(meta) = std::fs::metadata(path) else {
        return (0, 0);
    };
    #[cfg(unix)]
    let allocated = {
        use std::os::unix::fs::MetadataExt;
        meta.blocks().saturating_mul(512)
    };
    #[cfg(not(unix))]
    let allocated = meta.len();
    (meta.len(), allocated)
}
