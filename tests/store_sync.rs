//! The store under SIGKILL, and the uploader across a simulator outage: nothing
//! acknowledged is lost, nothing is delivered twice.

mod common;

use common::*;
use mynakyukyu::domain::{RecordBody, Timestamp};
use mynakyukyu::sim::Faults;
use mynakyukyu::sim::server::{ServeOptions, SimServer};
use mynakyukyu::store::{Store, StoreKey};
use mynakyukyu::sync::{Uploader, UploaderSettings};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn audit(i: u64) -> RecordBody {
    opt_out_audit(&format!("CRASH-{i}"), i as i64)
}

fn open_store(dir: &Path) -> Store {
    let key = StoreKey::load_or_create(&dir.join("store.key")).unwrap();
    // sled 0.34 releases its file lock when its flusher thread notices the drop, so a
    // reopen right after a drop may briefly find it held
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match Store::open(&dir.join("store"), &key) {
            Ok(s) => return s,
            Err(e)
                if e.to_string().contains("acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("open: {e}"),
        }
    }
}

/// Not a test on its own: the child side of the crash test, which runs it with
/// `--ignored --exact` in a process of its own. It appends until killed and prints the id of
/// every record whose append returned (was acknowledged).
#[test]
#[ignore = "the child process of acknowledged_records_survive_sigkill_and_upload_exactly_once, which starts it"]
fn crash_child_appender() {
    let dir = std::env::var("MYNAKYUKYU_CRASH_CHILD")
        .expect("MYNAKYUKYU_CRASH_CHILD names the store dir (set by the crash test)");
    let store = open_store(Path::new(&dir));
    let mut out = std::io::stdout().lock();
    for i in 0..100_000 {
        let stored = store.append(audit(i), Timestamp(i as i64)).unwrap();
        writeln!(out, "ACK {}", stored.record.id).unwrap();
        out.flush().unwrap();
    }
}

/// A random number in [lo, hi) from the OS.
fn random_between(lo: u64, hi: u64) -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    lo + u64::from_le_bytes(b) % (hi - lo)
}

#[test]
fn acknowledged_records_survive_sigkill_and_upload_exactly_once() {
    let dir = TempDir::new("crash");
    let mut acked: Vec<String> = Vec::new();
    // kills that left sled a snapshot cut short (the store removes it at open)
    let mut cut_snapshots = 0;
    const CYCLES: usize = 100;
    for cycle in 0..CYCLES {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "crash_child_appender",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MYNAKYUKYU_CRASH_CHILD", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ACK ").map(str::to_string))
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(random_between(15, 80)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        acked.extend(reader.join().unwrap());
        let sled_dir = dir.path().join("store").join("sled");
        cut_snapshots += std::fs::read_dir(&sled_dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".generating"))
                    .count()
            })
            .unwrap_or(0);
        // after every kill: the store opens, every acknowledged record is there and intact
        let store = open_store(dir.path());
        let held: HashSet<String> = store
            .records()
            .unwrap()
            .into_iter()
            .map(|r| r.record.id)
            .collect();
        for id in &acked {
            assert!(
                held.contains(id),
                "cycle {cycle}: acknowledged record {id} lost"
            );
        }
        let report = store.verify_chain().unwrap();
        assert_eq!(report.first_broken, None, "cycle {cycle}");
    }
    assert!(
        acked.len() > CYCLES,
        "the children hardly appended: {}",
        acked.len()
    );

    // upload everything, twice over (a lost acknowledgement), and count at the server
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let server = start_sim(Faults::default()).await;
        let store = Arc::new(open_store(dir.path()));
        let total = store.records().unwrap().len();
        let client = Arc::new(client(server.local_addr.port()));
        // a first batch goes out but the tablet "crashes" before marking it uploaded
        let first = store.outbox_batch(50).unwrap();
        client
            .upload_records(&common::chained(&client, &first))
            .await
            .unwrap();
        let uploader = Uploader::new(store.clone(), client.clone(), UploaderSettings::default());
        let sent = uploader.sync_once().await.unwrap();
        assert_eq!(sent, total);
        let ids = server.record_ids();
        assert_eq!(ids.len(), total, "each record exactly once at the server");
        let at_server: HashSet<String> = ids.into_iter().collect();
        for id in &acked {
            assert!(at_server.contains(id));
        }
        assert_eq!(uploader.state().await.unwrap().queued, 0);
        server.shutdown().await;
        common::reliability_row(
            "sigkill",
            "Faults",
            "SIGKILL of a process appending records (sealed, chained, fsynced) at a random moment, then reopen; then upload with one batch sent twice",
            CYCLES,
            0,
            &format!(
                "all {} acknowledged records present and the chain intact after every kill ({cut_snapshots} kills cut a sled snapshot short; the store drops it at open); {total} records at the server, each exactly once",
                acked.len()
            ),
        );
    });
}

/// How long the simulator stays down: `MYNA_OUTAGE_SECS` (the test script's reliability
/// figures use minutes), else a second.
fn outage() -> Duration {
    std::env::var("MYNA_OUTAGE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(1))
}

#[tokio::test]
async fn records_wait_out_a_simulator_outage_and_arrive_once() {
    let dir = TempDir::new("outage");
    let store = Arc::new(open_store(dir.path()));
    let mut appended = Vec::new();
    for i in 0..120 {
        appended.push(store.append(audit(i), Timestamp::now()).unwrap().record.id);
    }
    let outage = outage();
    // the simulator is down: pick a port and leave it closed
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = Arc::new(client_with(
        port,
        "localhost",
        "unit",
        "ca.pem",
        mynakyukyu::eligibility::ClientSettings {
            retries: 0,
            ..fast_settings()
        },
    ));
    let uploader = Uploader::new(
        store.clone(),
        client,
        UploaderSettings {
            batch: 50,
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(500),
            idle_poll: Duration::from_millis(100),
        },
    );
    let waker = uploader.waker();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(uploader.run(stopped));
    // crews keep working while the line is down: a record every 100 ms
    let down_since = tokio::time::Instant::now();
    let mut i = 120;
    while down_since.elapsed() < outage {
        tokio::time::sleep(Duration::from_millis(100)).await;
        appended.push(store.append(audit(i), Timestamp::now()).unwrap().record.id);
        i += 1;
    }
    let state = store.sync_state().unwrap();
    assert_eq!(state.queued, appended.len(), "nothing delivered while down");
    assert!(state.last_error.is_some());
    assert!(state.oldest_queued_at.is_some());

    // the simulator comes back on the same port
    let server = SimServer::start(ServeOptions {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        pki_dir: pki().to_path_buf(),
        faults: Faults::default(),
        audit_log: None,
        today: time::OffsetDateTime::now_utc().date(),
    })
    .await
    .unwrap();
    waker.notify_one();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.sync_state().unwrap().queued > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox never drained"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    task.await.unwrap();
    let mut ids = server.record_ids();
    ids.sort();
    appended.sort();
    assert_eq!(ids, appended, "every record delivered exactly once");
    let state = store.sync_state().unwrap();
    assert!(state.last_success.is_some());
    assert_eq!(state.last_error, None);
    server.shutdown().await;
    common::reliability_row(
        "sim-down",
        "Faults",
        &format!(
            "simulator down for {:.0} s while records keep being appended (one every 100 ms), the uploader retrying with backoff; then back on the same port",
            outage.as_secs_f64()
        ),
        appended.len(),
        0,
        "nothing delivered while down, the outbox drained after it returned, every record at the server exactly once",
    );
}

#[test]
fn a_restored_older_store_is_caught_by_the_server_and_by_the_tablet() {
    let dir = TempDir::new("rollback");
    let live = dir.path().join("tablet");
    std::fs::create_dir(&live).unwrap();
    let older = dir.path().join("older");
    let older_again = dir.path().join("older-again");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let server = start_sim(Faults::default()).await;
        let client = Arc::new(client(server.local_addr.port()));
        {
            let store = open_store(&live);
            for i in 0..3 {
                store.append(audit(i), Timestamp(i as i64)).unwrap();
            }
        }
        // the thief's (or a careless admin's) copy of the data dir, taken now
        copy_dir(&live, &older);
        copy_dir(&live, &older_again);
        {
            let store = Arc::new(open_store(&live));
            for i in 3..6 {
                store.append(audit(i), Timestamp(i as i64)).unwrap();
            }
            let uploader = Uploader::new(store.clone(), client.clone(), Default::default());
            assert_eq!(uploader.sync_once().await.unwrap(), 6);
            uploader.check_head().await.unwrap();
        }
        // the older copy is put back; it appends and uploads its own record 3
        let store = Arc::new(open_store(&older));
        store.append(audit(100), Timestamp(100)).unwrap();
        let uploader = Uploader::new(store.clone(), client.clone(), Default::default());
        let err = uploader.sync_once().await.unwrap_err();
        assert!(
            matches!(err, mynakyukyu::sync::SyncError::ChainConflict(_)),
            "{err}"
        );
        let state = store.sync_state().unwrap();
        assert!(state.chain_conflict.is_some(), "the tablet remembers it");
        // the copy still had its three records queued, and its own new one
        assert_eq!(state.queued, 4, "the refused records are kept, not lost");
        assert_eq!(server.record_ids().len(), 6, "the server took nothing of it");
        // and stays stopped: the next attempt does not even send
        assert!(uploader.sync_once().await.is_err());
        drop(uploader);
        drop(store);
        // another restore of the older copy, with nothing new: the head check finds it
        let store = Arc::new(open_store(&older_again));
        let uploader = Uploader::new(store.clone(), client.clone(), Default::default());
        let err = uploader.check_head().await.unwrap_err();
        assert!(
            matches!(err, mynakyukyu::sync::SyncError::ChainConflict(ref c) if c.contains("older store")),
            "{err}"
        );
        assert!(store.sync_state().unwrap().chain_conflict.is_some());
        server.shutdown().await;
    });
    common::reliability_row(
        "rollback-restored-store",
        "Faults",
        "an older copy of the store restored after its successors were uploaded: once appending its own record, once with nothing new",
        2,
        0,
        "the server refuses the conflicting record (chain-conflict); the tablet marks the conflict from the refusal and from the server's head, stops uploading, keeps the record queued",
    );
}

#[test]
fn an_emptied_chain_head_file_is_a_broken_chain() {
    let dir = TempDir::new("rollback");
    {
        let store = open_store(dir.path());
        for i in 0..3 {
            store.append(audit(i), Timestamp(i as i64)).unwrap();
        }
        assert_eq!(store.verify_chain().unwrap().first_broken, None);
    }
    std::fs::File::create(dir.path().join("store").join("chain.head")).unwrap();
    let store = open_store(dir.path());
    let broken = store.verify_chain().unwrap().first_broken.expect("broken");
    assert!(broken.reason.contains("emptied"), "{broken:?}");
    common::reliability_row(
        "chain-head-emptied",
        "Faults",
        "the chain head file outside sled emptied (truncated to 0 bytes) while the store was closed",
        1,
        0,
        "verify_chain reports the chain broken at the head (\"the chain head copy was emptied\")",
    );
}
