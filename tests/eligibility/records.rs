//! The audit chain at the server: per device key, idempotent, held to its signatures; the route guard on uploads.

use super::*;

/// Record ids are each tablet's own: another tablet's record with the same id is another
/// record at the server, not a replacement of the first one's.
#[tokio::test]
async fn the_server_holds_records_per_device_key_not_by_record_id_alone() {
    let server = start_sim(Faults::default()).await;
    let port = server.local_addr.port();
    let a = client(port);
    let b = second_unit(port);
    let genesis = "0".repeat(64);
    let from_a = chain_of(&a, 0, &genesis, 3, "same-ids");
    let from_b = chain_of(&b, 0, &genesis, 3, "same-ids");
    assert_eq!(from_a[0].record.id, from_b[0].record.id, "the same ids");
    assert_eq!(a.upload_records(&from_a).await.unwrap().accepted, 3);
    assert_eq!(b.upload_records(&from_b).await.unwrap().accepted, 3);
    assert_eq!(server.record_ids().len(), 6, "both tablets' records held");
    // and each tablet's chain is its own: A's head is still A's
    assert_eq!(
        a.records_head().await.unwrap().head.unwrap().hash,
        from_a[2].hash
    );
    server.shutdown().await;
    common::reliability_row(
        "records-per-device-key",
        "Security",
        "two tablets (two unit keys) upload records with the same record ids",
        2,
        0,
        "the server holds all six, keyed by the signing device key and then the id; neither tablet's record replaced the other's",
    );
}

#[tokio::test]
async fn records_upload_is_idempotent_and_held_to_the_signed_chain() {
    use mynakyukyu::eligibility::wire::problem;
    let server = start_sim(Faults::default()).await;
    let c = client(server.local_addr.port());
    let genesis = "0".repeat(64);
    let records = chain_of(&c, 0, &genesis, 5, "live");
    let first = c.upload_records(&records).await.unwrap();
    assert_eq!((first.accepted, first.duplicates), (5, 0));
    assert_eq!((first.head.seq, &first.head.hash), (4, &records[4].hash));
    let again = c.upload_records(&records[2..]).await.unwrap();
    assert_eq!((again.accepted, again.duplicates), (0, 3));
    assert_eq!(server.record_ids().len(), 5);
    assert_eq!(
        c.records_head().await.unwrap().head,
        Some(first.head.clone())
    );
    let refused = |e: ClientError| match e {
        ClientError::Refused(p) => p.kind,
        other => panic!("{other}"),
    };
    let next = chain_of(&c, 5, &records[4].hash, 3, "live");
    // forged: another link's signature, a record altered after signing, another unit's key
    let mut swapped = next[0].clone();
    swapped.signature = next[1].signature.clone();
    let mut altered = next[0].clone();
    altered.record.id = "R-altered".into();
    let other = client_with(
        server.local_addr.port(),
        "localhost",
        "other-unit",
        "ca.pem",
        fast_settings(),
    );
    let mut foreign = next[0].clone();
    foreign.signature = other.sign_chain_link(foreign.seq, &foreign.hash).unwrap();
    for forged in [swapped, altered, foreign] {
        let e = c.upload_records(&[forged]).await.unwrap_err();
        assert_eq!(refused(e), problem::BAD_RECORD_SIGNATURE);
    }
    // a gap: record 6 without 5
    let e = c.upload_records(&next[1..]).await.unwrap_err();
    assert_eq!(refused(e), problem::CHAIN_GAP);
    // a rollback: an older store restored appends its own record 3 and 4 and 5
    let rolled_back = chain_of(&c, 3, &records[2].hash, 3, "restored");
    let e = c.upload_records(&rolled_back).await.unwrap_err();
    assert_eq!(refused(e), problem::CHAIN_CONFLICT);
    // nothing of any refused batch was taken; the true next records still are
    assert_eq!(server.record_ids().len(), 5);
    let ok = c.upload_records(&next).await.unwrap();
    assert_eq!((ok.accepted, ok.head.seq), (3, 7));
    server.shutdown().await;
    common::reliability_row(
        "chain-forged-gap-rollback",
        "Bad input",
        "records uploaded with another link's signature, altered after signing, signed by another unit's key; a gap; a rolled-back chain",
        5,
        0,
        "each batch refused whole (bad-record-signature, chain-gap, chain-conflict), nothing of it stored; the true continuation accepted",
    );
}

#[tokio::test]
async fn the_uploader_sends_nothing_over_a_connection_the_route_guard_refuses() {
    use std::sync::atomic::AtomicBool;
    let server = start_sim(Faults::default()).await;
    let tunnel_up = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let guard: mynakyukyu::eligibility::client::RouteGuard = {
        let (up, seen) = (tunnel_up.clone(), seen.clone());
        Arc::new(move |peer| {
            seen.lock().unwrap().push(peer);
            up.load(Ordering::SeqCst)
        })
    };
    let c = Arc::new(client(server.local_addr.port()).with_route_guard(guard));
    let dir = TempDir::new("guarded-upload");
    let key = mynakyukyu::store::StoreKey::create(&dir.path().join("store.key")).unwrap();
    let store = Arc::new(mynakyukyu::store::Store::open(&dir.path().join("store"), &key).unwrap());
    for i in 0..3 {
        store
            .append(opt_out_audit("I-G", i), mynakyukyu::domain::Timestamp(i))
            .unwrap();
    }
    let uploader = mynakyukyu::sync::Uploader::new(store.clone(), c.clone(), Default::default());
    // the route is not the tunnel: refused before the TLS handshake, nothing sent, kept
    let err = uploader.sync_once().await.unwrap_err();
    assert!(err.to_string().contains("IPsec tunnel"), "{err}");
    assert_eq!(server.stats().handshakes.load(Ordering::Relaxed), 0);
    assert_eq!(store.sync_state().unwrap().queued, 3);
    assert_eq!(
        seen.lock().unwrap().first().copied(),
        Some(server.local_addr),
        "asked about the address the connection reached"
    );
    // the tunnel is up: uploaded
    tunnel_up.store(true, Ordering::SeqCst);
    assert_eq!(uploader.sync_once().await.unwrap(), 3);
    assert_eq!(server.record_ids().len(), 3);
    // down again under the kept-alive connection: the next request is refused on it
    tunnel_up.store(false, Ordering::SeqCst);
    store
        .append(opt_out_audit("I-G", 9), mynakyukyu::domain::Timestamp(9))
        .unwrap();
    let requests = server.stats().requests.load(Ordering::Relaxed);
    assert!(uploader.sync_once().await.is_err());
    assert_eq!(server.stats().requests.load(Ordering::Relaxed), requests);
    assert_eq!(
        c.health().await.unwrap_err().service_failure(),
        ServiceFailure::TunnelRequired
    );
    server.shutdown().await;
    common::reliability_row(
        "uploader-line-rule",
        "Security",
        "records queued while the route guard says the connection is not the tunnel; then the tunnel up; then down again under the kept-alive connection",
        3,
        0,
        "nothing sent while refused (no TLS handshake, no request, records kept queued); uploaded once when up; refused again on the reused connection",
    );
}
