//! One function per subcommand.

use std::fs::File;
use std::io::{BufReader, IsTerminal};
use std::path::Path;

use edgestate::export::{Family, Format};
use edgestate::{Error, Store, Table};

use crate::failure::*;
use crate::output::*;

pub(crate) fn info(path: &Path, json: bool) -> Result<(), Failure> {
    let store = open_existing(path)?;
    let fail = |e: Error| store_failure(path, &e);
    let stats = store.stats().map_err(fail)?;
    let expired = store.expired_awaiting_sweep().map_err(fail)?;
    let (size, allocated) = file_sizes(path);
    let mut log = path.as_os_str().to_owned();
    log.push("-wal");
    let (log_size, _) = file_sizes(Path::new(&log));
    let families: Vec<(Family, u64)> = Family::ALL
        .iter()
        .map(|&f| (f, stats.records(f.table())))
        .collect();
    if json {
        let counts: serde_json::Map<String, serde_json::Value> = families
            .iter()
            .map(|(f, n)| (f.name().to_owned(), serde_json::Value::from(*n)))
            .collect();
        return print_json(
            &serde_json::json!({
                "path": path.display().to_string(),
                "schema_version": stats.schema_version,
                "file_size_bytes": size,
                "allocated_bytes": allocated,
                "page_log_bytes": log_size,
                "records": counts,
                "expiry_index_entries": stats.records(Table::Expiry),
                "expired_awaiting_sweep": expired,
                "last_commit_durability": "unknown",
            }),
            true,
        );
    }
    println!("store                   {}", path.display());
    println!("schema version          {}", stats.schema_version);
    println!("file size               {size} bytes ({allocated} allocated)");
    println!("page log                {log_size} bytes");
    println!("expired, not swept      {expired}");
    println!("last commit durability  unknown (not recorded in the file)");
    println!();
    println!("{:<22}{:>12}", "FAMILY", "RECORDS");
    for (f, n) in families {
        println!("{:<22}{n:>12}", f.name());
    }
    Ok(())
}

pub(crate) fn get(path: &Path, family_name: &str, key: &str, json: bool) -> Result<(), Failure> {
    let family = family(family_name)?;
    let store = open_existing(path)?;
    match store
        .inspect_key(family, key)
        .map_err(|e| store_failure(path, &e))?
    {
        Some(view) => {
            let value = serde_json::to_value(&view)
                .map_err(|e| Failure::new(EXIT_FAILURE, e.to_string()))?;
            print_json(&value, !json)
        }
        None => Err(Failure::new(
            EXIT_NOT_FOUND,
            format!("{family} has no record under `{key}`"),
        )),
    }
}

pub(crate) fn ls(
    path: &Path,
    family_name: &str,
    prefix: &str,
    limit: usize,
    json: bool,
) -> Result<(), Failure> {
    let family = family(family_name)?;
    let store = open_existing(path)?;
    let views = store
        .inspect(family, prefix, limit)
        .map_err(|e| store_failure(path, &e))?;
    if json {
        for view in &views {
            let value = serde_json::to_value(view)
                .map_err(|e| Failure::new(EXIT_FAILURE, e.to_string()))?;
            print_json(&value, false)?;
        }
        return Ok(());
    }
    println!(
        "{:<32} {:>8} {:<28} VALUE",
        "KEY", "VERSION", "EXPIRES AT (MS)"
    );
    for view in &views {
        let version = view
            .version
            .map_or_else(|| "-".to_owned(), |v| v.to_string());
        println!(
            "{:<32} {version:>8} {:<28} {}",
            truncate(&view.key, 32),
            expiry_text(view),
            truncate(&view.value.to_string(), 60)
        );
    }
    eprintln!("{} record(s)", views.len());
    Ok(())
}

pub(crate) fn dump(path: &Path, out_path: Option<&Path>) -> Result<(), Failure> {
    let store = open_existing(path)?;
    let mut progress = Progress::new("dump", record_total(&store));
    let mut out = output(out_path)?;
    let result = store.dump(&mut out, &mut |n| progress.update(n));
    progress.finish();
    result.map_err(|e| store_failure(path, &e))?;
    Ok(())
}

pub(crate) fn verify(path: &Path, json: bool) -> Result<(), Failure> {
    let store = open_existing(path)?;
    // Every record's checksum (and every page redb reaches) first: a failed page check
    // makes redb discard its allocator state until the file is reopened.
    let report = store.verify().map_err(|e| store_failure(path, &e))?;
    let pages = store.check_integrity();
    let mut problems: Vec<String> = report.engine_damage.clone();
    if report.damaged_records > 0 {
        problems.push(format!(
            "{} damaged record(s), the first: {}",
            report.damaged_records,
            report.damaged.first().map_or("", String::as_str)
        ));
    }
    match pages {
        Ok(true) => {}
        Ok(false) => problems.push("page checksums failed; redb repaired what it could".into()),
        Err(e) => problems.push(sentence(&e)),
    }
    let problem = (!problems.is_empty()).then(|| problems.join("; "));
    if json {
        print_json(
            &serde_json::json!({
                "ok": problem.is_none(),
                "entries_checked": report.entries_checked,
                "damaged_records": report.damaged_records,
                "problem": problem,
            }),
            true,
        )?;
    } else if problem.is_none() {
        println!(
            "{}: intact ({} records and index entries checked)",
            path.display(),
            report.entries_checked
        );
    }
    match problem {
        None => Ok(()),
        Some(p) => Err(Failure::new(
            EXIT_DAMAGED,
            format!("{} is damaged: {p}", path.display()),
        )),
    }
}

pub(crate) fn sweep(path: &Path, json: bool) -> Result<(), Failure> {
    let store = open_existing(path)?;
    let removed = store
        .sweep_all_expired(1000)
        .map_err(|e| store_failure(path, &e))?;
    if json {
        print_json(&serde_json::json!({ "removed": removed }), true)
    } else {
        println!("removed {removed} expired record(s)");
        Ok(())
    }
}

pub(crate) fn compact(path: &Path, json: bool) -> Result<(), Failure> {
    let store = open_existing(path)?;
    let (before, _) = file_sizes(path);
    if !json && std::io::stderr().is_terminal() {
        eprintln!("compacting {} ...", path.display());
    }
    let compacted = store.compact().map_err(|e| store_failure(path, &e))?;
    store.close().map_err(|e| store_failure(path, &e))?;
    let (after, _) = file_sizes(path);
    if json {
        print_json(
            &serde_json::json!({ "compacted": compacted, "bytes_before": before, "bytes_after": after }),
            true,
        )
    } else {
        println!("{}: {before} bytes -> {after} bytes", path.display());
        Ok(())
    }
}

pub(crate) fn backup(path: &Path, dest: &Path, json: bool) -> Result<(), Failure> {
    let store = open_existing(path)?;
    let report = store.backup_to(dest).map_err(|e| store_failure(path, &e))?;
    if json {
        print_json(
            &serde_json::json!({
                "path": report.path.display().to_string(),
                "records": report.records(),
                "bytes": report.bytes,
            }),
            true,
        )
    } else {
        println!(
            "wrote {} ({} records, {} bytes), verified",
            report.path.display(),
            report.records(),
            report.bytes
        );
        Ok(())
    }
}

pub(crate) fn export(path: &Path, format: Format, out_path: Option<&Path>) -> Result<(), Failure> {
    let store = open_existing(path)?;
    let mut progress = Progress::new("export", record_total(&store));
    let mut out = output(out_path)?;
    let result = store.export(format, &mut out, &mut |n| progress.update(n));
    progress.finish();
    let n = result.map_err(|e| store_failure(path, &e))?;
    if out_path.is_some() && std::io::stderr().is_terminal() {
        eprintln!("exported {n} record(s)");
    }
    Ok(())
}

pub(crate) fn import(path: &Path, file: &Path, format: Format, json: bool) -> Result<(), Failure> {
    let mut input: Box<dyn std::io::BufRead> = if file == Path::new("-") {
        Box::new(BufReader::new(std::io::stdin().lock()))
    } else {
        let f = File::open(file).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Failure::new(EXIT_NOT_FOUND, format!("{} does not exist", file.display()))
            } else {
                io_failure(file, &e)
            }
        })?;
        Box::new(BufReader::new(f))
    };
    let store = Store::open(path).map_err(|e| store_failure(path, &e))?;
    let mut progress = Progress::new("import (lines)", None);
    let result = store.import(format, &mut input, &mut |n| progress.update(n));
    progress.finish();
    let report = result.map_err(|e| store_failure(path, &e))?;
    store.close().map_err(|e| store_failure(path, &e))?;
    if json {
        print_json(
            &serde_json::json!({
                "lines": report.lines,
                "records": report.records,
                "batches": report.batches,
            }),
            true,
        )
    } else {
        println!(
            "imported {} record(s) from {} line(s) into {}",
            report.records,
            report.lines,
            path.display()
        );
        Ok(())
    }
}
