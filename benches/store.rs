//! Store benchmark: append+flush latency and throughput, store size per 1,000 records,
//! and the time to upload 10,000 queued records to the simulator. Writes a Markdown
//! fragment for docs/BENCHMARKS.md. Run: `cargo bench --bench store` (or `scripts/bench`).

mod common;

use mynakyukyu::domain::{
    AuditAction, AuditEntry, ConsentState, IdentityCheck, IdentityMethod, IncidentId, InfoKind,
    OperatorId, PatientRef, RecordBody, Sensitive, TerminalId, Timestamp, UnitId,
};

use mynakyukyu::store::{Store, StoreKey};
use mynakyukyu::sync::{Uploader, UploaderSettings};
use std::sync::Arc;
use std::time::Instant;

const APPENDS: usize = 2_000;
const UPLOAD: usize = 10_000;

fn audit(i: usize) -> RecordBody {
    RecordBody::Audit(AuditEntry {
        at: Timestamp(i as i64),
        incident: IncidentId::new(format!("BENCH-{i}")),
        operator: OperatorId::new("EMT-0001"),
        unit: UnitId::new("TRAINING-UNIT"),
        terminal: TerminalId::new("TRAINING-TERMINAL"),
        patient: Some(PatientRef {
            local_id: Sensitive(format!("P{:04}", i % 240)),
            insured_number: Sensitive("12345678-01".into()),
            public_assistance: None,
        }),
        consent: Some(ConsentState::Consented),
        identity_method: IdentityMethod::MynaCard,
        identity_check: Some(IdentityCheck::Photo),
        token: None,
        card: None,
        action: AuditAction::View {
            kind: InfoKind::EmergencySummary,
        },
    })
}

fn main() {
    if common::listing() {
        return;
    }
    let out_dir = common::out_dir();
    let tmp_dir = common::TempDir::new("bench-store");
    let tmp = tmp_dir.path().to_path_buf();
    let key = StoreKey::create(&tmp.join("store.key")).unwrap();

    // append + flush, one at a time, as the app does
    let store = Store::open(&tmp.join("a"), &key).unwrap();
    let mut lat = Vec::with_capacity(APPENDS);
    let started = Instant::now();
    for i in 0..APPENDS {
        let t = Instant::now();
        store.append(audit(i), Timestamp::now()).unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let wall = started.elapsed().as_secs_f64();
    let size = store.size_on_disk().unwrap();
    let (p50, p99) = (
        common::quantile(&mut lat, 0.5),
        common::quantile(&mut lat, 0.99),
    );
    drop(store);

    // upload 10,000 queued records
    let pki = tmp.join("pki");
    mynakyukyu::pki::dev::generate(&pki).unwrap();
    let store = Arc::new(Store::open(&tmp.join("u"), &key).unwrap());
    for i in 0..UPLOAD {
        store.append(audit(i), Timestamp::now()).unwrap();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (upload_s, held) = rt.block_on(async {
        let server = common::start_bench_sim(&pki).await;
        let client = common::bench_client(&pki, server.local_addr.port());
        let uploader = Uploader::new(store.clone(), Arc::new(client), UploaderSettings::default());
        let t = Instant::now();
        uploader.sync_once().await.unwrap();
        let s = t.elapsed().as_secs_f64();
        let held = server.record_ids().len();
        server.shutdown().await;
        (s, held)
    });
    drop(store);

    // growth: the same operations with 1,000 and with 100,000 records queued
    let big = common::count("BENCH_STORE_GROWTH", 100_000);
    let store = Store::open(&tmp.join("g"), &key).unwrap();
    let mut growth = vec![];
    let mut filled = 0;
    for target in [1_000, big] {
        while filled < target {
            store.append(audit(filled), Timestamp::now()).unwrap();
            filled += 1;
        }
        let mut append = vec![];
        for _ in 0..100 {
            let t = Instant::now();
            store.append(audit(filled), Timestamp::now()).unwrap();
            append.push(t.elapsed().as_secs_f64() * 1e3);
            filled += 1;
        }
        let mut status = vec![];
        for _ in 0..20 {
            let t = Instant::now();
            let state = store.sync_state().unwrap();
            status.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(state.queued, filled);
        }
        let t = Instant::now();
        let chain = store.verify_chain().unwrap();
        let verify_s = t.elapsed().as_secs_f64();
        assert!(chain.first_broken.is_none());
        growth.push((
            filled,
            common::quantile(&mut append, 0.5),
            common::quantile(&mut status, 0.5),
            verify_s,
            store.size_on_disk().unwrap() as f64 / (1024.0 * 1024.0),
        ));
    }
    drop(store);
    drop(tmp_dir);
    let mut growth_md = String::from(
        "\nGrowth: one store filled to about 1,000 and then about 100,000 queued records (not \
uploaded). The sync status (queued count and oldest record) is what the status strip reads \
once per command and every 5 s.\n\n\
| records | append+flush median (100) | sync status read median (20) | verify the whole chain | size on disk |\n|---|---|---|---|---|\n",
    );
    for (n, append, status, verify, size) in &growth {
        growth_md.push_str(&format!(
            "| {n} | {append:.2} ms | {status:.2} ms | {verify:.2} s | {size:.1} MiB |\n"
        ));
    }

    let md = format!(
        "## Store: append + flush, size, upload\n\n\
Command: `cargo bench --bench store` (release; sled 0.34 in a temp dir on this machine's disk; every append sealed with ChaCha20-Poly1305, hash-chained, committed and flushed (fsync) before it returns, plus the chain-head copy written and synced).\n\n\
| measure | value |\n|---|---|\n\
| append+flush latency, median / p99 ({APPENDS} appends) | {p50:.2} ms / {p99:.2} ms |\n\
| append throughput, one writer | {:.0} records/s |\n\
| store size on disk per 1,000 audit records | {:.0} KiB |\n\
| upload {UPLOAD} queued records to the simulator (batches of 200, loopback mTLS) | {upload_s:.2} s ({:.0} records/s); server holds {held} |\n",
        APPENDS as f64 / wall,
        size as f64 / 1024.0 / (APPENDS as f64 / 1000.0),
        UPLOAD as f64 / upload_s,
    ) + &growth_md;
    std::fs::write(out_dir.join("store.md"), &md).unwrap();
    println!("{md}");
}
