//! Where a redb file's bytes are: every table's rows and stored bytes, largest first, and the
//! file's allocated and fragmented space. `bench/soak.sh` runs it on the soak's file after the
//! daemon stops (redb locks the file while wagate has it open).
//!
//! usage: redb_tables PATH/wagate.redb

use anyhow::Context;
use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableHandle};

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: redb_tables PATH/wagate.redb")?;
    let file = std::fs::metadata(&path)
        .with_context(|| path.clone())?
        .len();
    let db = Database::open(&path).with_context(|| format!("open {path}"))?;
    let mut rows = Vec::new();
    {
        let txn = db.begin_read()?;
        for handle in txn.list_tables()? {
            let name = handle.name().to_string();
            let table = txn.open_untyped_table(handle)?;
            let stats = table.stats()?;
            rows.push((
                name,
                table.len()?,
                stats.stored_bytes(),
                stats.leaf_pages() + stats.branch_pages(),
            ));
        }
    }
    let stats = db.begin_write()?.stats()?;
    rows.sort_by_key(|r| std::cmp::Reverse(r.2));
    println!("{path}: {file} bytes in the file");
    println!(
        "allocated pages {} ({} bytes each), fragmented {} bytes, metadata {} bytes",
        stats.allocated_pages(),
        stats.page_size(),
        stats.fragmented_bytes(),
        stats.metadata_bytes()
    );
    println!("| table | rows | stored bytes | pages |");
    println!("|---|---:|---:|---:|");
    for (name, len, bytes, pages) in rows {
        println!("| {name} | {len} | {bytes} | {pages} |");
    }
    Ok(())
}
