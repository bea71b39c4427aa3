//! Nothing kept longer than needed, from the attacker's side: he takes the hub's whole data
//! dir (and, worse, the master key) after retention, and looks for the patient.

use super::*;
use mynakyukyu::handoff::{Answer, Change};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_retention_the_data_dir_holds_no_trace_of_the_packet() {
    let mut fx = HubFixture::start_with(|o| {
        o.retention = Duration::from_millis(300);
        o.sweep_every = Duration::from_millis(100);
    })
    .await;
    let tablet = fx.tablet("unit");
    let id = tablet.ask(&ask(&["H1", "H2"])).await.unwrap().case_id;
    let core = fx.hub().core.clone();
    core.answer(&HospitalCode("H1".into()), "er1", &id, Answer::Accept)
        .await
        .unwrap();
    core.answer(
        &HospitalCode("H2".into()),
        "er2",
        &id,
        Answer::Decline {
            reason: mynakyukyu::handoff::DeclineReason::BedsFull,
        },
    )
    .await
    .unwrap();
    tablet.decide(&id, &decide("H1")).await.unwrap();
    tablet
        .update(&id, &Change::Eta { minutes: 3 })
        .await
        .unwrap();

    // while the case is open: sealed on disk, never in clear
    let db = fx.data.path().join(mynakyukyu::hub::store::DB_FILE);
    let sealed_body: Vec<u8> = {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let b = sqlx::query_scalar("SELECT body_sealed FROM cases WHERE id = ?")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        b
    };
    assert!(sealed_body.len() > 500);
    for (path, bytes) in all_bytes(fx.data.path()) {
        for w in CLINICAL_WORDS {
            assert!(
                !contains(&bytes, w.as_bytes()),
                "{w} in clear in {}",
                path.display()
            );
        }
    }
    // the master key is not in the data dir
    let key = std::fs::read(&fx.options.seal_key).unwrap();
    for (path, bytes) in all_bytes(fx.data.path()) {
        assert!(
            !contains(&bytes, &key),
            "the master key in {}",
            path.display()
        );
    }

    tablet.update(&id, &Change::Arrived).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while core.store.open_case_count().await.unwrap() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "retention never destroyed the case"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fx.stop().await;

    // the thief's copy: every file of the data dir, with the master key in hand
    let copy = TempDir::new("hub-thief");
    common::copy_dir(fx.data.path(), copy.path());
    let files = all_bytes(copy.path());
    assert!(
        files
            .iter()
            .any(|(p, _)| p.ends_with(mynakyukyu::hub::store::DB_FILE))
    );
    for (path, bytes) in &files {
        for w in CLINICAL_WORDS
            .iter()
            .chain(["抗凝固薬", "意識障害", "090-1234-5678"].iter())
        {
            assert!(!contains(bytes, w.as_bytes()), "{w} in {}", path.display());
        }
        // not even the sealed body (which the master key and its case key once opened)
        for chunk in sealed_body.chunks(32).filter(|c| c.len() == 32) {
            assert!(
                !contains(bytes, chunk),
                "a piece of the sealed case is left in {}",
                path.display()
            );
        }
    }
    // what stays: the counts and an audit trail without clinical content
    let store = mynakyukyu::hub::store::HubStore::open(
        copy.path()
            .join(fx.data.path().file_name().unwrap())
            .as_path(),
    )
    .await
    .unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (
            stats[0].hospitals_asked,
            stats[0].declines,
            stats[0].outcome.as_str()
        ),
        (2, 1, "arrived")
    );
    assert!(stats[0].time_to_acceptance_ms.is_some());
    let audit = store.audit_rows().await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "destroy" && a.case_id.as_deref() == Some(&id))
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_request_is_gone_at_once_for_every_candidate() {
    let mut fx = HubFixture::start().await;
    let tablet = fx.tablet("unit");
    let id = tablet.ask(&ask(&["H1", "H2"])).await.unwrap().case_id;
    let mut h1 = fx.signed_in("er1").await;
    assert!(h1.get("/").await.body.contains(&id));
    tablet.close(&id).await.unwrap();
    assert!(!h1.get("/").await.body.contains(&id));
    assert_eq!(fx.hub().core.store.open_case_count().await.unwrap(), 0);
    assert!(
        tablet.case(&id).await.is_err(),
        "the case is destroyed, not just hidden"
    );
    let stats = fx.hub().core.store.stats().await.unwrap();
    assert_eq!(stats[0].outcome, "closed");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_are_swept_and_cannot_be_used() {
    let mut fx = HubFixture::start_with(|o| o.sweep_every = Duration::from_millis(100)).await;
    let mut h1 = fx.signed_in("er1").await;
    assert_eq!(h1.get("/").await.status, 200);
    let core = fx.hub().core.clone();
    let staff = core.store.staff_by_login("er1").await.unwrap().unwrap();
    // a session that expired a moment ago, as a stolen old cookie would present it
    let token = "0".repeat(64);
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(token.as_bytes()))
    };
    core.store
        .create_session(&hash, staff.id, "csrf", mynakyukyu::hub::now_ms() - 1)
        .await
        .unwrap();
    let mut thief = fx.inbox();
    thief.cookie = Some(format!("{}={token}", mynakyukyu::hub::inbox::COOKIE));
    assert_eq!(
        thief.get("/").await.status,
        303,
        "an expired session is no session"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while core.store.session_count().await.unwrap() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired session was never swept"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(h1.get("/").await.status, 200, "the live session stays");
    fx.stop().await;
}
