//! The thief with the whole data dir and its key after every drill; a training run keeps to its own dir and to loopback.

use super::*;

/// The thief's own decryption: the day keys opened with the key file lying beside them,
/// then every value of every sled tree and the chain-head copy opened with whichever key
/// fits (ChaCha20-Poly1305, nonce first, tree name and key as associated data; a day-sealed
/// value starts with 0xD1 and its day: the format is no secret). Returns the plaintexts.
fn open_everything(
    store_dir: &std::path::Path,
    key: &[u8],
    log_remnants: bool,
) -> Vec<(String, Vec<u8>)> {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    let open_with = |key: &[u8], tree: &[u8], k: &[u8], v: &[u8]| -> Option<Vec<u8>> {
        if v.len() < 28 {
            return None;
        }
        let cipher = chacha20poly1305::ChaCha20Poly1305::new_from_slice(key).unwrap();
        let mut aad = tree.to_vec();
        aad.push(0);
        aad.extend_from_slice(k);
        cipher
            .decrypt(
                chacha20poly1305::Nonce::from_slice(&v[..12]),
                Payload {
                    msg: &v[12..],
                    aad: &aad,
                },
            )
            .ok()
    };
    let mut day_keys = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(store_dir.join("keys")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let day: u32 = name.strip_suffix(".key").unwrap().parse().unwrap();
        let sealed = std::fs::read(e.path()).unwrap();
        let aad = format!("day-key\0{day}");
        let k = open_with(key, b"keys", aad.as_bytes(), &sealed).expect("a day key opens");
        day_keys.insert(day, k);
    }
    assert!(!day_keys.is_empty(), "records are sealed under day keys");
    let open = |tree: &[u8], k: &[u8], v: &[u8]| -> Option<Vec<u8>> {
        if v.len() > 5 && v[0] == 0xD1 {
            let day = u32::from_be_bytes([v[1], v[2], v[3], v[4]]);
            if let Some(plain) = day_keys
                .get(&day)
                .and_then(|dk| open_with(dk, tree, k, &v[5..]))
            {
                return Some(plain);
            }
        }
        open_with(key, tree, k, v)
    };
    let mut out = vec![];
    let db = sled::open(store_dir.join("sled")).unwrap();
    for name in db.tree_names() {
        let tree = db.open_tree(&name).unwrap();
        for kv in tree.iter() {
            let (k, v) = kv.unwrap();
            let label = format!("{}/{}", String::from_utf8_lossy(&name), hex::encode(&k));
            match open(&name, &k, &v) {
                Some(plain) => out.push((label, plain)),
                // not sealed by us (sled's own default tree holds nothing of ours)
                None => out.push((format!("{label} (raw)"), v.to_vec())),
            }
        }
    }
    let head = std::fs::read(store_dir.join("chain.head")).unwrap();
    if let Some(plain) = open(b"head", b"chain.head", &head) {
        out.push(("chain.head".into(), plain));
    }
    // what sled deleted or overwrote can still lie in its log until compaction: read the raw
    // files as a stream of candidate sealed values under every key the thief holds
    let mut keys: Vec<Vec<u8>> = vec![key.to_vec()];
    keys.extend(day_keys.values().cloned());
    for f in common::files(&store_dir.join("sled"))
        .into_iter()
        .filter(|_| log_remnants)
    {
        let raw = std::fs::read(&f).unwrap();
        for (at, plain) in stream_candidates(&raw, &keys) {
            out.push((format!("{} at byte {at} (log remnant)", f.display()), plain));
        }
    }
    out
}

/// Every offset of `raw` taken as a 12-byte nonce followed by ChaCha20-Poly1305 ciphertext
/// under each key, decrypted without the tag (the stream cipher alone: the tag only proves
/// integrity, the thief wants the text). Candidates whose first bytes decrypt to a JSON
/// object are returned with up to 16 KiB of plaintext; the value's end is unknown, so what
/// follows it decrypts to noise, which cannot match a name or a drug.
fn stream_candidates(raw: &[u8], keys: &[Vec<u8>]) -> Vec<(usize, Vec<u8>)> {
    use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
    let mut found = vec![];
    for key in keys {
        for at in 0..raw.len().saturating_sub(12 + 16 + 2) {
            // sled's segments are mostly zero-filled: a sealed value never starts there
            if raw[at..at + 14].iter().all(|b| *b == 0) {
                continue;
            }
            let mut c = chacha20::ChaCha20::new(key.as_slice().into(), raw[at..at + 12].into());
            // ChaCha20-Poly1305 encrypts from block 1 (block 0 keys Poly1305)
            c.seek(64u64);
            let mut head = [raw[at + 12], raw[at + 13]];
            c.apply_keystream(&mut head);
            if head != *b"{\"" {
                continue;
            }
            let end = raw.len().min(at + 12 + 16 * 1024);
            let mut plain = raw[at + 12..end].to_vec();
            let mut c = chacha20::ChaCha20::new(key.as_slice().into(), raw[at..at + 12].into());
            c.seek(64u64);
            c.apply_keystream(&mut plain);
            found.push((at, plain));
        }
    }
    found
}

#[test]
fn after_every_drill_a_thief_with_the_whole_data_dir_and_its_key_finds_no_clinical_data() {
    let scan = TempDir::new("drill-scan");
    let data = scan.path().to_path_buf();
    let patients = patients();
    let mut logs = Vec::new();
    // after each scenario the thief takes the whole data dir, key file included: every
    // value it can open, and every byte of every file
    let loot = TempDir::new("drill-loot");
    let mut opened = vec![];
    let mut stolen_files = vec![];
    let names = scenario_names();
    for (i, name) in names.iter().enumerate() {
        let out = Command::new(env!("CARGO_BIN_EXE_mynakyukyu"))
            .args(["--log-format", "json", "drill", "--scenario", name])
            .env("MYNAKYUKYU_DATA", &data)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}");
        logs.extend_from_slice(&out.stderr);
        let copy = loot.path().join(name);
        let cp = Command::new("cp")
            .arg("-a")
            .arg(&data)
            .arg(&copy)
            .output()
            .unwrap();
        assert!(cp.status.success());
        let key = std::fs::read(copy.join("training").join("store.key")).unwrap();
        // the raw log, where deleted values linger, once at the end (a full scan is slow)
        let last = i + 1 == names.len();
        for (what, plain) in open_everything(&copy.join("training").join("store"), &key, last) {
            opened.push((format!("after {name}: {what}"), plain));
        }
        stolen_files.extend(common::files(&copy));
    }
    assert!(
        String::from_utf8_lossy(&logs).contains("drill finished"),
        "logging was not on"
    );
    let decrypted = opened.iter().filter(|(w, _)| !w.ends_with("(raw)")).count();
    let remnants = opened
        .iter()
        .filter(|(w, _)| w.ends_with("(log remnant)"))
        .count();
    assert!(
        remnants > 0,
        "the raw-log scan found no sealed value at all, not even the live ones: it proves nothing"
    );
    // what was stored is there and verifies, and the store has no place for clinical data
    let dir = data.join("training");
    let key = mynakyukyu::store::StoreKey::load(&dir.join("store.key")).unwrap();
    let store = mynakyukyu::store::Store::open(&dir.join("store"), &key).unwrap();
    let store_records = store.records().unwrap().len();
    assert!(store_records >= 20);
    assert_eq!(store.verify_chain().unwrap().first_broken, None);
    let mut trees = store.tree_names();
    trees.sort();
    assert_eq!(
        trees,
        ["__sled__default", "meta", "outbox", "records"],
        "a tree that could hold clinical data"
    );
    drop(store);
    // the scenario patients' names, kana, insured numbers, and the drugs they were shown
    let mut secrets: Vec<String> = Vec::new();
    for p in patients.iter().filter(|p| !p["scenario"].is_null()) {
        for field in ["name", "kana", "insured_number", "recipient_number"] {
            secrets.push(p[field].as_str().unwrap().to_string());
        }
    }
    for p in patients.iter().filter(|p| {
        p["id"] == "P0020" || p["id"] == "P0031" || p["id"] == "P0042" || p["id"] == "P0050"
    }) {
        for field in ["name", "kana", "insured_number"] {
            secrets.push(p[field].as_str().unwrap().to_string());
        }
    }
    secrets.extend(
        [
            "ワーファリン",
            "ノボラピッド",
            "トレシーバ",
            "バイアスピリン",
            "透析",
            "みなと循環器病院",
        ]
        .map(String::from),
    );
    // a 医療扶助 patient has no insured number
    secrets.retain(|s| !s.is_empty());
    let mut blobs: Vec<(String, Vec<u8>)> = common::files(&data)
        .into_iter()
        .chain(stolen_files)
        .map(|f| (f.display().to_string(), std::fs::read(&f).unwrap()))
        .collect();
    blobs.push(("logs".into(), logs));
    for (what, bytes) in &blobs {
        for secret in &secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret:?} readable in {what}"
            );
        }
    }
    // opened with the key: the records must name the patient by number for the audit
    // answer, but nothing clinical and no name
    let records = store_records;
    assert!(
        decrypted > records,
        "the thief opened {decrypted} values, fewer than the {records} records: the scan proves nothing"
    );
    let clinical: Vec<String> = secrets
        .iter()
        .filter(|s| {
            !patients
                .iter()
                .any(|p| p["insured_number"] == s.as_str() || p["recipient_number"] == s.as_str())
        })
        .cloned()
        .collect();
    assert!(clinical.iter().any(|s| s == "ワーファリン"));
    for (what, plain) in &opened {
        for secret in &clinical {
            assert!(
                !plain.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret:?} readable in the decrypted value {what}"
            );
        }
    }
    common::reliability_row(
        "no-plaintext",
        "Security",
        &format!(
            "every drill scenario with trace-level JSON logs, then every file of the data dir and the logs searched for {} patient names, kana, insured numbers and the drugs and hospital shown",
            secrets.len()
        ),
        blobs.len(),
        0,
        "none readable in any file or log line; the store holds only records, outbox and meta (no clinical data); the audit chain verifies",
    );
    common::reliability_row(
        "thief-every-scenario",
        "Security",
        &format!(
            "after every drill scenario, the whole data dir copied with its key file; every value of every sled tree and the chain-head copy opened with that key and the day keys it opens, by the test's own ChaCha20-Poly1305 code, and after the last one sled's raw log read at every offset as a candidate sealed value under each of those keys ({remnants} found: deleted values linger there until compaction); all searched for {} names, kana, drugs and hospitals. The same test fails on 2150e09, whose cleared clinical cache stayed in the log",
            clinical.len()
        ),
        decrypted,
        0,
        "nothing clinical and no name in any decrypted value (only crew ids, times, consent events and insured numbers, which the audit answer needs)",
    );
}

#[test]
fn a_training_run_keeps_to_its_own_dir_and_to_loopback() {
    let d = TempDir::new("drill-prod");
    let report = d.path().join("r.json");
    drill_into(d.path(), "tunnel-line-drop", "--report", &report);
    // nothing of the production layout exists: only training/
    let top: Vec<String> = std::fs::read_dir(d.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, vec!["training".to_string()]);
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let endpoint = r["endpoint"].as_str().unwrap();
    let addr: std::net::SocketAddr = endpoint.parse().unwrap();
    assert!(addr.ip().is_loopback(), "{endpoint}");
    assert!(
        report.with_extension("html").is_file(),
        "HTML debrief beside the JSON"
    );
    let html = std::fs::read_to_string(report.with_extension("html")).unwrap();
    assert!(html.contains("訓練 TRAINING") && html.contains("PASS"));
    assert!(
        r["steps"].as_array().unwrap().len() >= 7,
        "a timing per step"
    );
    common::reliability_row(
        "training-loopback",
        "Security",
        "a training drill on a data dir of its own: where it writes and which endpoint it used",
        1,
        0,
        "only training/ written; the endpoint the client used is a loopback address (the training world only ever builds loopback endpoints)",
    );
}
