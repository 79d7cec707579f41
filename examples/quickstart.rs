//! Creates (or reopens) `edgestate-quickstart.db` in the working directory, writes, and
//! prints what a restart restores. Run it twice: the counter keeps counting.
//!
//! `cargo run --release --example quickstart`

use edgestate::{Store, Versioned};

fn main() -> edgestate::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "edgestate-quickstart.db".into());
    let store = Store::open(&path)?;

    let restored: Option<Versioned<u64>> = store.kv().get_value("quickstart", "runs")?;
    match &restored {
        Some(v) => println!("restored: runs = {} (version {})", v.value, v.version),
        None => println!("fresh store at {path}"),
    }
    let version = store
        .kv()
        .update_value("quickstart", "runs", None, |runs: Option<u64>| {
            Ok(runs.unwrap_or(0) + 1)
        })?;
    drop(store);

    // Reopen, as a restarted process would, and read back what was acknowledged.
    let store = Store::open(&path)?;
    let now: Versioned<u64> =
        store
            .kv()
            .get_value("quickstart", "runs")?
            .ok_or(edgestate::Error::NotFound {
                table: "kv",
                key: "quickstart/runs".into(),
            })?;
    println!("after reopen: runs = {} (version {version})", now.value);
    let stats = store.stats()?;
    println!(
        "file: {path}, {} bytes, schema v{}",
        stats.file_size_bytes, stats.schema_version
    );
    Ok(())
}
