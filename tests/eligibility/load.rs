//! Two hundred tablets at once.

use super::*;

#[tokio::test]
async fn two_hundred_concurrent_tablets_all_get_answers() {
    let server = Arc::new(start_sim(Faults::default()).await);
    // 200 tablets sharing one test certificate: one unit, 200 patients
    server.with_simulator(|s| {
        s.set_rate_limit(mynakyukyu::sim::PatientRateLimit {
            flag_at: 1000,
            refuse_above: 1000,
        })
    });
    let port = server.local_addr.port();
    let cards: Vec<Vec<u8>> = (0..200)
        .map(|i| card_of(&server, &format!("P{:04}", 11 + i % 200)))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, der) in cards.into_iter().enumerate() {
        let server = server.clone();
        tasks.spawn(async move {
            let started = std::time::Instant::now();
            let c = client_with(
                port,
                "localhost",
                "unit",
                "ca.pem",
                ClientSettings::default(),
            );
            let incident = format!("LOAD-{i}");
            let QualificationResponse::Coverage {
                qualification_ref, ..
            } = c.qualification(&request(&incident, der)).await?
            else {
                return Ok::<Option<f64>, ClientError>(None);
            };
            c.emergency_info(&inquiry(
                &server,
                &incident,
                qualification_ref,
                ConsentState::Consented,
            ))
            .await?;
            Ok(Some(started.elapsed().as_secs_f64() * 1e3))
        });
    }
    let mut latencies = vec![];
    while let Some(r) = tasks.join_next().await {
        if let Some(ms) = r.unwrap().unwrap() {
            latencies.push(ms);
        }
    }
    // P0011.. are ordinary patients: every one answered
    assert_eq!(latencies.len(), 200);
    assert_eq!(server.inquiry_count(), 200);
    latencies.sort_by(f64::total_cmp);
    common::reliability_row(
        "load-200",
        "Load",
        "200 tablets at once, each a new mTLS connection, a qualification check and an inquiry (debug build, loopback, one process)",
        200,
        0,
        &format!(
            "0 errors; per tablet p50 {:.0} ms, p99 {:.0} ms",
            latencies[100], latencies[197]
        ),
    );
}
