//! Failures: the one sentence printed on stderr and the documented exit code.

use std::path::Path;

use edgestate::export::Family;
use edgestate::{Error, Store};

/// Exit code: a failure not covered by another code (I/O, storage).
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Exit code: the store is held open by another process.
pub(crate) const EXIT_IN_USE: u8 = 3;
/// Exit code: the store file, or the record asked for, does not exist.
pub(crate) const EXIT_NOT_FOUND: u8 = 4;
/// Exit code: the file is damaged or is not an edgestate store.
pub(crate) const EXIT_DAMAGED: u8 = 5;
/// Exit code: an import line is bad.
pub(crate) const EXIT_BAD_INPUT: u8 = 6;

/// A failure: the sentence to print and the exit code.
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// One sentence for an error: its message and its causes, joined.
pub(crate) fn sentence(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

pub(crate) fn store_failure(path: &Path, e: &Error) -> Failure {
    match e {
        Error::AlreadyOpen { .. } => Failure::new(
            EXIT_IN_USE,
            format!(
                "{} is in use by another process (a running bot?); edgestate allows one process \
                 per file: stop that process and run this again, or have it write a copy with \
                 Store::backup_to and inspect the copy",
                path.display()
            ),
        ),
        Error::NotAStore { .. } | Error::SchemaTooNew { .. } | Error::SchemaTooOld { .. } => {
            Failure::new(EXIT_DAMAGED, sentence(e))
        }
        Error::Corrupt { .. }
        | Error::Decode { .. }
        | Error::Damaged { .. }
        | Error::Storage(redb::Error::Corrupted(_)) => Failure::new(
            EXIT_DAMAGED,
            format!("{} is damaged: {}", path.display(), sentence(e)),
        ),
        Error::Import { .. } => Failure::new(EXIT_BAD_INPUT, sentence(e)),
        _ => Failure::new(EXIT_FAILURE, sentence(e)),
    }
}

/// Opens an existing store (never creates one).
pub(crate) fn open_existing(path: &Path) -> Result<Store, Failure> {
    if !path.exists() {
        return Err(Failure::new(
            EXIT_NOT_FOUND,
            format!("{} does not exist", path.display()),
        ));
    }
    // A file that is not a store is refused before anything is created beside it.
    Store::open(path).map_err(|e| store_failure(path, &e))
}

pub(crate) fn family(name: &str) -> Result<Family, Failure> {
    Family::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
        Failure::new(
            2,
            format!("unknown family `{name}`; families are {}", names.join(", ")),
        )
    })
}

pub(crate) fn io_failure(what: &Path, e: &std::io::Error) -> Failure {
    Failure::new(EXIT_FAILURE, format!("{}: {e}", what.display()))
}
