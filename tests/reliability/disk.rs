//! A disk that fills while appending (root: a small tmpfs).

use super::*;

#[test]
#[ignore = "needs root to mount a small tmpfs: scripts/test runs it with --ignored as root"]
fn disk_full_while_appending_is_a_clear_error_and_loses_nothing_acknowledged() {
    assert!(
        nix_root(),
        "needs root to mount a small tmpfs (run as root, or through scripts/test)"
    );
    let dir = TempDir::new("diskfull");
    let mnt = dir.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(mounted.success());
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let key = mynakyukyu::store::StoreKey::create(&dir.path().join("store.key")).unwrap();
    let store_dir = mnt.join("store");
    let mut acked = vec![];
    let mut error = None;
    {
        let store = mynakyukyu::store::Store::open(&store_dir, &key).unwrap();
        for i in 0..100_000 {
            match store.append(
                common::opt_out_audit(&format!("FULL-{i}"), i),
                Timestamp::now(),
            ) {
                Ok(s) => acked.push(s.record.id),
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        // after the failure the store still refuses cleanly rather than panicking
        let again = store.append(common::opt_out_audit("FULL-again", 0), Timestamp::now());
        if let Ok(s) = again {
            acked.push(s.record.id);
        }
        // the status strip counts only acknowledged records
        // (or, once sled has failed a write, the same clear error on reads)
        let full = |e: mynakyukyu::store::StoreError| {
            assert!(e.to_string().contains("No space left"), "{e}");
        };
        match store.sync_state() {
            Ok(st) => assert_eq!(st.queued, acked.len()),
            Err(e) => full(e),
        }
        // and an upload now takes exactly the acknowledged records
        match store.outbox_batch(usize::MAX) {
            Ok(batch) => assert_eq!(batch.len(), acked.len()),
            Err(e) => full(e),
        }
    }
    let error = error.expect("the 4 MiB disk never filled");
    assert!(
        error.contains("No space left") || error.contains("space"),
        "a clear error: {error}"
    );
    // make room (as an admin would), reopen: every acknowledged record is there, chain intact
    let bigger = dir.path().join("moved");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&store_dir)
        .arg(&bigger)
        .status()
        .unwrap();
    assert!(copied.success());
    let store = mynakyukyu::store::Store::open(&bigger, &key).unwrap();
    let held: std::collections::HashSet<String> = store
        .records()
        .unwrap()
        .into_iter()
        .map(|r| r.record.id)
        .collect();
    let lost = acked.iter().filter(|id| !held.contains(*id)).count();
    assert_eq!(lost, 0, "acknowledged records lost");
    assert_eq!(store.verify_chain().unwrap().first_broken, None);
    store
        .append(common::opt_out_audit("AFTER", 1), Timestamp::now())
        .unwrap();
    reliability_row(
        "disk-full",
        "Faults",
        "appending sealed records to a store on a 4 MiB tmpfs until the disk is full, then reopening it with room",
        acked.len(),
        lost,
        &format!(
            "a clear error ({}); every acknowledged record present, the chain intact, appends work again",
            error.lines().next().unwrap_or("")
        ),
    );
}

fn nix_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}
