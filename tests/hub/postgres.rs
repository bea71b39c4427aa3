//! Two hubs behind a load balancer on one PostgreSQL (Debian's, started by the test): a
//! request posted to hub A is answered on a page connected to hub B, and the answer reaches
//! the tablet whose stream is on A. The streams' fallback poll is set to a minute, so the
//! answer arriving in seconds is the database's NOTIFY at work, not the poll.

use super::*;
use common::postgres::PgServer;
use mynakyukyu::handoff::{Answer, Change, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_on_one_postgresql_pass_an_answer_from_a_page_on_b_to_a_tablet_on_a() {
    let Some(pg) = PgServer::start() else { return };
    let url = pg.url();
    let mut a = HubFixture::start_with(|o| {
        o.database = Some(url.clone());
        o.poll_every = Duration::from_secs(60);
    })
    .await;
    let mut options_b = a.options.clone();
    options_b.tablet_listen = "127.0.0.1:0".parse().unwrap();
    options_b.inbox_listen = "127.0.0.1:0".parse().unwrap();
    let b = Hub::start(options_b).await.unwrap();

    let tablet = a.tablet("unit");
    let id = tablet.ask(&ask(&["H1", "H2"])).await.unwrap().case_id;
    let mut events = tablet.events(&id, None).await.unwrap();

    // the nurse's page is on hub B: it sees the request hub A took, and answers there
    let mut page = Inbox::new(b.inbox_addr.port());
    let mut signed_in = false;
    for _ in 0..40 {
        if page.sign_in("er1", PASSWORD, &a.code("er1")).await.0 == 303 {
            signed_in = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(signed_in);
    assert!(
        page.get("/").await.body.contains(&id),
        "hub B shows hub A's request"
    );
    let csrf = page.csrf().await;
    let r = page
        .post(
            &format!("/cases/{id}/answer"),
            &[("csrf", &csrf), ("answer", "accept")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);

    let (event, view) = tokio::time::timeout(Duration::from_secs(20), events.next_view())
        .await
        .expect("the answer given on hub B reached the tablet on hub A (NOTIFY), well before the 60 s poll")
        .unwrap()
        .unwrap();
    assert_eq!(event.event, "answer");
    assert_eq!(
        view.candidates[0].answer.as_ref().unwrap().answer,
        Answer::Accept
    );

    // the rest of the case across both hubs: decided on A, acknowledged on B
    tablet.decide(&id, &decide("H1")).await.unwrap();
    tablet.update(&id, &Change::Arrived).await.unwrap();
    let csrf = page.csrf().await;
    let r = page
        .post(
            &format!("/cases/{id}/ack"),
            &[("csrf", &csrf), ("version", "2")],
        )
        .await;
    assert_eq!(r.status, 303);
    let v = tablet.case(&id).await.unwrap();
    assert_eq!((v.stage, v.acknowledged), (Stage::Arrived, 2));
    b.shutdown().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_too_the_database_files_hold_no_clinical_word() {
    let Some(pg) = PgServer::start() else { return };
    let url = pg.url();
    let mut fx = HubFixture::start_with(|o| {
        o.database = Some(url.clone());
        o.retention = Duration::from_millis(200);
        o.sweep_every = Duration::from_millis(100);
    })
    .await;
    let tablet = fx.tablet("unit");
    let id = tablet.ask(&ask(&["H1"])).await.unwrap().case_id;
    fx.hub()
        .core
        .answer(&HospitalCode("H1".into()), "er1", &id, Answer::Accept)
        .await
        .unwrap();
    tablet.decide(&id, &decide("H1")).await.unwrap();
    tablet.update(&id, &Change::Arrived).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fx.hub().core.store.open_case_count().await.unwrap() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "retention never destroyed the case"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fx.stop().await;
    let files = all_bytes(&pg.data_dir());
    assert!(files.len() > 100, "the cluster's files were read");
    for (path, bytes) in &files {
        for w in CLINICAL_WORDS
            .iter()
            .chain(["抗凝固薬", "090-1234-5678"].iter())
        {
            assert!(!contains(bytes, w.as_bytes()), "{w} in {}", path.display());
        }
    }
    drop(pg);
}
