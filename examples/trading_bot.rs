//! A trading bot that restarts exactly where it stopped. Fills arrive possibly more than
//! once (exchanges resend on reconnect); each fill is applied exactly once, in the same
//! transaction that claims its id and updates the position and session P&L. A circuit
//! breaker trips after a loss streak, and its state survives the restart too.
//!
//! `cargo run --release --example trading_bot [path]` (default: a temporary file).

use edgestate::{Error, Store, Versioned};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Position {
    qty: i64,
    avg_price_cents: i64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Risk {
    realised_pnl_cents: i64,
    loss_streak: u32,
    halted: bool,
}

struct Fill {
    id: &'static str,
    qty: i64,
    price_cents: i64,
}

const NS: &str = "bot:momentum:BTCUSDT";
const MAX_LOSS_STREAK: u32 = 2;

/// Applies one fill exactly once: claim + position + risk in one commit.
fn apply_fill(store: &Store, fill: &Fill) -> edgestate::Result<bool> {
    store.write(|tx| {
        if !tx
            .dedup()
            .claim(
                &format!("{NS}:{}", fill.id),
                "momentum",
                fill.qty.unsigned_abs(),
            )?
            .is_new()
        {
            return Ok(false);
        }
        let pos: Position = tx
            .kv()
            .get_value(NS, "position")?
            .map(|v: Versioned<Position>| v.value)
            .unwrap_or_default();
        let mut risk: Risk = tx
            .kv()
            .get_value(NS, "risk")?
            .map(|v: Versioned<Risk>| v.value)
            .unwrap_or_default();
        let mut next = pos.clone();
        if pos.qty != 0 && pos.qty.signum() != fill.qty.signum() {
            // Closing (part of) the position realises P&L.
            let closed = fill.qty.abs().min(pos.qty.abs());
            let pnl = (fill.price_cents - pos.avg_price_cents) * closed * pos.qty.signum();
            risk.realised_pnl_cents += pnl;
            risk.loss_streak = if pnl < 0 { risk.loss_streak + 1 } else { 0 };
            risk.halted |= risk.loss_streak >= MAX_LOSS_STREAK;
            next.qty += fill.qty;
            if next.qty == 0 {
                next.avg_price_cents = 0;
            }
        } else {
            let total = pos.qty + fill.qty;
            next.avg_price_cents =
                (pos.avg_price_cents * pos.qty + fill.price_cents * fill.qty) / total;
            next.qty = total;
        }
        tx.kv().put_value(NS, "position", &next, None)?;
        tx.kv().put_value(NS, "risk", &risk, None)?;
        Ok::<_, Error>(true)
    })
}

fn main() -> edgestate::Result<()> {
    let dir = tempfile::tempdir().map_err(|source| Error::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let path = std::env::args()
        .nth(1)
        .map_or_else(|| dir.path().join("bot.edgestate"), Into::into);
    let fills = [
        Fill {
            id: "f1",
            qty: 2,
            price_cents: 6_400_000,
        },
        Fill {
            id: "f2",
            qty: -1,
            price_cents: 6_350_000,
        },
        Fill {
            id: "f2",
            qty: -1,
            price_cents: 6_350_000,
        }, // resent on reconnect
        Fill {
            id: "f3",
            qty: -1,
            price_cents: 6_300_000,
        },
    ];
    {
        let store = Store::open(&path)?;
        for fill in &fills[..3] {
            let applied = apply_fill(&store, fill)?;
            println!("fill {} applied: {applied}", fill.id);
        }
        // The framework's JSON snapshot of the session, as rustrade saves it.
        store.blobs().put(
            "momentum/BTCUSDT",
            &serde_json::json!({"session": 1, "orders_open": 0}),
        )?;
        // The process dies here (drop without any shutdown work).
    }
    let store = Store::open(&path)?;
    let pos: Position = store
        .kv()
        .get_value(NS, "position")?
        .map(|v: Versioned<Position>| v.value)
        .unwrap_or_default();
    println!("restored position: {pos:?}");
    println!(
        "restored framework snapshot: {:?}",
        store.blobs().get("momentum/BTCUSDT")?
    );
    for fill in &fills {
        let applied = apply_fill(&store, fill)?;
        println!("after restart, fill {} applied: {applied}", fill.id);
    }
    let risk: Risk = store
        .kv()
        .get_value(NS, "risk")?
        .map(|v: Versioned<Risk>| v.value)
        .unwrap_or_default();
    println!(
        "position {:?}, risk {risk:?}",
        store
            .kv()
            .get_value::<Position>(NS, "position")?
            .map(|v| v.value)
    );
    assert_eq!(risk.loss_streak, 2, "two losing closes, each counted once");
    assert!(risk.halted, "the circuit breaker tripped and stays tripped");
    Ok(())
}
