//! Message retention figures: the redb file size while finished sent messages and received
//! messages keep arriving, with the retention (count bound) and without it, and how long a
//! retention round takes. `cargo bench --bench message_retention` prints a table.

use std::time::{Duration, Instant};

use wagate::store::Store;
use wagate::store::inbound::{self, InboundRecord};
use wagate::store::queue::{self, NewMessage};
use wagate::store::retention::{self, Settings};

const ROUNDS: usize = 10;
/// Sent and received messages per round (each); the soak's rate was about 2000 each in 30 min.
const PER_ROUND: usize = 1000;
/// Messages written per transaction while filling.
const CHUNK: usize = 100;
const KEEP: u64 = 2000;

fn fill(store: &Store, round: usize) {
    for chunk in 0..PER_ROUND / CHUNK {
        store
            .write_blocking(|t| {
                for i in 0..CHUNK {
                    let n = (round * PER_ROUND + chunk * CHUNK + i) as i64;
                    let r = queue::enqueue(
                        t,
                        "s1",
                        &NewMessage {
                            kind: "text".into(),
                            to: "15550001111@s.whatsapp.net".into(),
                            content: serde_json::json!({ "text": format!("message {n} {}", "x".repeat(120)) }),
                            blob: None,
                            idempotency_key: Some(format!("key-{n}")),
                            now_ms: n,
                            to_phone: None,
                            to_lid: None,
                        },
                    )?
                    .record;
                    queue::mark_sending(t, "s1", &r.id, &format!("3EB0{n:016X}"))?;
                    queue::mark_sent(t, "s1", &r.id, n)?;
                    inbound::put(
                        t,
                        "s1",
                        &InboundRecord {
                            id: format!("msg_{n:020}"),
                            chat: "15550002222@s.whatsapp.net".into(),
                            sender: "15550002222@s.whatsapp.net".into(),
                            wa_id: format!("3A{n:018X}"),
                            kind: "text".into(),
                            sent_at: n,
                            proto: Some("x".repeat(160)),
                            ..Default::default()
                        },
                    )?;
                }
                Ok(())
            })
            .expect("fill");
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let kept = Store::open(&dir.path().join("kept.redb"), 4 << 20).expect("open");
    let all = Store::open(&dir.path().join("all.redb"), 4 << 20).expect("open");
    let settings = Settings {
        max_age_ms: 30 * 86_400_000,
        max: KEEP,
        wa_max: 50_000,
        every: std::time::Duration::from_secs(3600),
    };
    println!(
        "message retention: {PER_ROUND} sent + {PER_ROUND} received per round, count bound {KEEP} each"
    );
    println!(
        "| round | messages written | file, no retention | file, retention | round removed | round time |"
    );
    println!(
        "|------:|-----------------:|-------------------:|----------------:|--------------:|-----------:|"
    );
    let mut times: Vec<Duration> = Vec::new();
    for round in 0..ROUNDS {
        fill(&kept, round);
        fill(&all, round);
        let t = Instant::now();
        // The clock is the newest message's time: only the count bound removes.
        let (sent, received) = rt
            .block_on(retention::prune(
                &kept,
                ((round + 1) * PER_ROUND) as i64,
                settings,
            ))
            .expect("prune");
        let took = t.elapsed();
        times.push(took);
        let size = |s: &Store| std::fs::metadata(s.path()).map(|m| m.len()).unwrap_or(0);
        println!(
            "| {:>5} | {:>16} | {:>14.2} MiB | {:>11.2} MiB | {:>13} | {:>7.1} ms |",
            round + 1,
            2 * (round + 1) * PER_ROUND,
            size(&all) as f64 / 1048576.0,
            size(&kept) as f64 / 1048576.0,
            sent + received,
            took.as_secs_f64() * 1000.0
        );
    }
    times.sort();
    println!(
        "median round time: {:.1} ms",
        times[times.len() / 2].as_secs_f64() * 1000.0
    );
}
