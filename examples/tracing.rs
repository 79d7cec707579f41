//! edgestate's spans and events printed by `tracing-subscriber`: a span per transaction,
//! per sweep and per maintenance call, and a warning for a slow write.
//!
//! `cargo run --example tracing --features tracing`

use std::time::Duration;

use edgestate::Store;

fn main() -> edgestate::Result<()> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .init();
    let store = Store::builder()
        // Every write counts as slow here, to show the warning.
        .slow_write_warning(Duration::ZERO)
        .temporary()?;
    store.kv().put("bot", "position", b"flat", None)?;
    store.kv().get("bot", "position")?;
    store.sweep_expired(100)?;
    store.check_integrity()?;
    Ok(())
}
