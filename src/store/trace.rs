//! Spans and events for the `tracing` feature: one span per transaction (kind,
//! durability, duration, outcome), per sweep batch (removed, duration), per maintenance
//! call and per recovery; a `warn` event for a write slower than the store's threshold.
//! Without the feature every function here is a plain call.

use std::time::Duration;

use crate::config::Durability;

/// Runs a transaction of `kind` ("write" or "read") inside a span.
#[cfg(feature = "tracing")]
pub(crate) fn transaction<T, E>(
    kind: &'static str,
    durability: Option<Durability>,
    slow: Duration,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    // Nobody listens: not even the clock is read.
    if !tracing::dispatcher::has_been_set() {
        return f();
    }
    let span = tracing::debug_span!(
        "edgestate.transaction",
        kind,
        durability = ?durability,
        duration_us = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let _entered = span.enter();
    let started = std::time::Instant::now();
    let result = f();
    let took = started.elapsed();
    span.record(
        "duration_us",
        u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
    );
    span.record("outcome", if result.is_ok() { "ok" } else { "error" });
    if kind == "write" && took > slow {
        tracing::warn!(
            duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            threshold_ms = u64::try_from(slow.as_millis()).unwrap_or(u64::MAX),
            durability = ?durability,
            "slow edgestate write transaction"
        );
    }
    result
}

/// Runs a transaction of `kind` ("write" or "read") inside a span.
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn transaction<T, E>(
    _kind: &'static str,
    _durability: Option<Durability>,
    _slow: Duration,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    f()
}

/// Runs one sweep batch inside a span that records how many records it removed.
#[cfg(feature = "tracing")]
pub(crate) fn sweep<E>(
    f: impl FnOnce() -> Result<crate::ttl::SweepOutcome, E>,
) -> Result<crate::ttl::SweepOutcome, E> {
    if !tracing::dispatcher::has_been_set() {
        return f();
    }
    let span = tracing::debug_span!(
        "edgestate.sweep",
        removed = tracing::field::Empty,
        duration_us = tracing::field::Empty,
    );
    let _entered = span.enter();
    let started = std::time::Instant::now();
    let result = f();
    span.record(
        "duration_us",
        u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    );
    if let Ok(outcome) = &result {
        span.record("removed", outcome.removed);
    }
    result
}

/// Runs one sweep batch inside a span that records how many records it removed.
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn sweep<E>(
    f: impl FnOnce() -> Result<crate::ttl::SweepOutcome, E>,
) -> Result<crate::ttl::SweepOutcome, E> {
    f()
}

/// Runs a maintenance call (`compact`, `check_integrity`, `reopen`, `recovery`) inside an
/// `info` span, with an event for its outcome.
#[cfg(feature = "tracing")]
pub(crate) fn maintenance<T, E: std::fmt::Display>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let span = tracing::info_span!("edgestate.maintenance", what);
    let _entered = span.enter();
    let started = std::time::Instant::now();
    let result = f();
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match &result {
        Ok(_) => tracing::info!(duration_ms, "edgestate {what} done"),
        Err(e) => tracing::warn!(duration_ms, error = %e, "edgestate {what} failed"),
    }
    result
}

/// Runs a maintenance call inside a span.
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn maintenance<T, E: std::fmt::Display>(
    _what: &'static str,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    f()
}

/// Reports a finished background verification: `warn` when it found damage.
#[cfg(feature = "tracing")]
pub(crate) fn verified(report: &crate::maintenance::VerifyReport) {
    if report.damaged_records > 0 || !report.engine_damage.is_empty() {
        tracing::warn!(
            damaged_records = report.damaged_records,
            engine_damage = ?report.engine_damage,
            first_damaged = ?report.damaged.first(),
            "edgestate background verification found damage"
        );
    } else {
        tracing::info!(
            entries_checked = report.entries_checked,
            complete = report.complete,
            "edgestate background verification finished"
        );
    }
}

/// Reports a finished background verification: `warn` when it found damage.
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn verified(_report: &crate::maintenance::VerifyReport) {}
