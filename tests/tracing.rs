//! The `tracing` feature: a span per transaction with its outcome, and a warning for a
//! write slower than the store's threshold.

#![cfg(feature = "tracing")]
#![allow(clippy::unwrap_used)] // tests state their expectations by unwrapping

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn transactions_get_spans_and_slow_writes_a_warning() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let store = edgestate::Store::builder()
            .slow_write_warning(Duration::ZERO)
            .in_memory()
            .unwrap();
        store.kv().put("ns", "k", b"v", None).unwrap();
        store.kv().get("ns", "k").unwrap();
        assert!(store.kv().put("", "k", b"v", None).is_err());
    });
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains(r#"edgestate.transaction{kind="write""#),
        "{text}"
    );
    assert!(text.contains(r#"kind="read""#), "{text}");
    assert!(text.contains(r#"outcome="ok""#), "{text}");
    assert!(text.contains("slow edgestate write transaction"), "{text}");
}
