//! Eligibility link benchmark: warm and cold inquiry latency through a delay proxy at
//! 0, 50 and 150 ms RTT, side by side with curl using the same client certificate, and
//! the simulator under 200 concurrent tablets. Writes a Markdown fragment for
//! docs/BENCHMARKS.md (scripts/bench assembles it).
//!
//! Run: `cargo bench --bench eligibility` (or `scripts/bench`).

mod common;

use mynakyukyu::domain::{
    CardCredential, ConsentState, IdentityCheck, IdentityMethod, IncidentId, OperatorId,
    QualificationRef, TerminalId, UnitId,
};
use mynakyukyu::eligibility::EligibilityClient;
use mynakyukyu::eligibility::wire::{self, QualificationResponse};
use mynakyukyu::session::{EmergencyInquiry, QualificationRequest};
use mynakyukyu::sim::proxy::DelayProxy;
use mynakyukyu::sim::server::SimServer;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WARM_N: usize = 50;
const COLD_N: usize = 20;
const LOAD_CLIENTS: usize = 200;
const LOAD_PER_CLIENT: usize = 5;

/// A reference and the patient its qualification answer named.
type Bound = (QualificationRef, mynakyukyu::domain::PatientRef);

fn inquiry(incident: &str, q: &Bound) -> EmergencyInquiry {
    EmergencyInquiry {
        incident: IncidentId::new(incident),
        qualification: q.0.clone(),
        patient: q.1.clone(),
        consent: ConsentState::Consented,
        operator: OperatorId::new("EMT-B"),
        unit: UnitId::new(mynakyukyu::pki::dev::UNIT),
        terminal: TerminalId::new("T-B"),
        identity_method: IdentityMethod::MynaCard,
        identity_check: IdentityCheck::Photo,
        token: Default::default(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A card of `patient` made from the dev PKI's test JPKI CA (as `mynakyukyu-sim card` does).
fn card_of(pki: &Path, patient: &str) -> Vec<u8> {
    let today = time::OffsetDateTime::now_utc().date();
    mynakyukyu::sim::patient_card(pki, patient, "1234", today)
        .expect("patient card")
        .1
        .auth_certificate_der
}

async fn qualify(c: &EligibilityClient, server: &SimServer, patient: &str) -> Bound {
    let der = server.with_simulator(|s| s.issue_card(patient).unwrap().auth_certificate_der);
    qualify_card(c, patient, der).await
}

async fn qualify_card(c: &EligibilityClient, patient: &str, der: Vec<u8>) -> Bound {
    match c
        .qualification(&QualificationRequest {
            incident: IncidentId::new(format!("Q-{patient}")),
            credential: CardCredential {
                auth_certificate_der: der,
                token: Default::default(),
            },
            operator: OperatorId::new("EMT-B"),
            unit: UnitId::new(mynakyukyu::pki::dev::UNIT),
            terminal: TerminalId::new("T-B"),
        })
        .await
        .unwrap()
    {
        QualificationResponse::Coverage {
            qualification_ref,
            coverage,
        } => (qualification_ref, coverage.patient),
        QualificationResponse::OptOut => panic!("opt-out patient in benchmark"),
    }
}

/// curl doing the same POST `n` times in one process (first cold, then kept alive).
fn curl_times(dir: &Path, port: u16, body: &Path, n: usize) -> Option<Vec<f64>> {
    let url = format!("https://localhost:{port}{}", wire::PATH_EMERGENCY_INFO);
    let mut cmd = Command::new("curl");
    cmd.current_dir(dir);
    for i in 0..n {
        if i > 0 {
            cmd.arg("--next");
        }
        cmd.args(["-sS", "-o", "/dev/null", "-w", "%{time_total}\\n"])
            .args([
                "--cacert", "ca.pem", "--cert", "unit.pem", "--key", "unit.key",
            ])
            .args(["-H", "content-type: application/json", "--data-binary"])
            .arg(format!("@{}", body.display()))
            .arg(&url);
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!("curl failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse::<f64>().ok())
            .map(|s| s * 1e3)
            .collect(),
    )
}

fn main() {
    if common::listing() {
        return;
    }
    let out_dir = common::out_dir();
    let pki_dir = common::TempDir::new("bench-pki");
    let pki = pki_dir.path().join("pki");
    mynakyukyu::pki::dev::generate(&pki).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut md = String::new();
    rt.block_on(async {
        let server = common::start_bench_sim(&pki).await;
        let sim = common::SimProcess::start_with(
            &pki,
            &["--flag-patients-per-hour", "1000000", "--max-patients-per-hour", "1000000"],
        );
        let target = sim.addr;

        md.push_str("## Eligibility link: one emergency-info inquiry (ours vs curl, same client certificate)\n\n");
        md.push_str("Command: `cargo bench --bench eligibility` (release build; the simulator binary `mynakyukyu-sim serve` in a process of its own, the delay proxy in the bench process, curl as a separate process).\n\n");
        md.push_str(&format!("Warm: {WARM_N} inquiries on one kept-alive connection. Cold: {COLD_N} inquiries each on a new connection with a full TLS 1.3 handshake (fresh client, no resumption). curl: one process doing {WARM_N}+1 requests with `--next` (first is its cold request). Times in ms, median / p95.\n\n"));
        md.push_str("| RTT | ours warm | curl warm | warm ratio ours/curl | target warm ≤ RTT+10 | ours cold | curl cold (1 sample) | target cold ≤ 2·RTT+20 |\n|---|---|---|---|---|---|---|---|\n");
        for rtt_ms in [0u64, 50, 150] {
            let rtt = Duration::from_millis(rtt_ms);
            let proxy = DelayProxy::start(target, rtt).await.unwrap();
            let port = proxy.local_addr.port();
            // warm
            let c = common::bench_client(&pki, port);
            let q = qualify_card(&c, "P0010", card_of(&pki, "P0010")).await;
            c.emergency_info(&inquiry("warmup", &q)).await.unwrap();
            let mut warm = Vec::new();
            for i in 0..WARM_N {
                let t = Instant::now();
                c.emergency_info(&inquiry(&format!("W{rtt_ms}-{i}"), &q))
                    .await
                    .unwrap();
                warm.push(ms(t.elapsed()));
            }
            // cold: a new client each time (new config: no session to resume)
            let mut cold = Vec::new();
            for i in 0..COLD_N {
                let fresh = common::bench_client(&pki, port);
                let t = Instant::now();
                fresh
                    .emergency_info(&inquiry(&format!("C{rtt_ms}-{i}"), &q))
                    .await
                    .unwrap();
                cold.push(ms(t.elapsed()));
            }
            // curl, same request body
            let body = pki.join(format!("inquiry-{rtt_ms}.json"));
            let req = wire::EmergencyInfoRequest {
                incident_id: IncidentId::new(format!("CURL-{rtt_ms}")),
                qualification_ref: q.0.clone(),
                consent: ConsentState::Consented,
                operator_id: OperatorId::new("EMT-B"),
                unit_id: UnitId::new(mynakyukyu::pki::dev::UNIT),
                terminal_id: TerminalId::new("T-B"),
                identity_method: IdentityMethod::MynaCard,
                identity_check: IdentityCheck::Photo,
                card_signature: None,
                token: Default::default(),
            };
            std::fs::write(&body, serde_json::to_vec(&req).unwrap()).unwrap();
            let curl = tokio::task::spawn_blocking({
                let pki = pki.clone();
                move || curl_times(&pki, port, &body, WARM_N + 1)
            })
            .await
            .unwrap();
            let (w50, w95) = (common::quantile(&mut warm, 0.5), common::quantile(&mut warm, 0.95));
            let (c50, c95) = (common::quantile(&mut cold, 0.5), common::quantile(&mut cold, 0.95));
            let (curl_cold, curl_w50, curl_w95) = match curl {
                Some(mut t) if t.len() == WARM_N + 1 => {
                    let first = t.remove(0);
                    (first, common::quantile(&mut t, 0.5), common::quantile(&mut t, 0.95))
                }
                _ => (f64::NAN, f64::NAN, f64::NAN),
            };
            let warm_target = rtt_ms as f64 + 10.0;
            let cold_target = 2.0 * rtt_ms as f64 + 20.0;
            md.push_str(&format!(
                "| {rtt_ms} ms | {w50:.2} / {w95:.2} | {curl_w50:.2} / {curl_w95:.2} | {:.2} | {} | {c50:.2} / {c95:.2} | {curl_cold:.2} | {} |\n",
                w50 / curl_w50,
                if w50 <= warm_target { "met" } else { "missed" },
                if c50 <= cold_target { "met" } else { "missed" },
            ));
            eprintln!("rtt {rtt_ms}: warm {w50:.2}/{w95:.2} curl {curl_w50:.2}/{curl_w95:.2}; cold {c50:.2}/{c95:.2} curl {curl_cold:.2}");
        }

        // load: 200 tablets at once, each with its own connection
        let server = Arc::new(server);
        let load_port = server.local_addr.port();
        let mut refs = Vec::new();
        {
            let c = common::bench_client(&pki, server.local_addr.port());
            for i in 0..LOAD_CLIENTS {
                refs.push(qualify(&c, &server, &format!("P{:04}", 10 + i % 200)).await);
            }
        }
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, q) in refs.into_iter().enumerate() {
            let pki = pki.clone();
            tasks.spawn(async move {
                let c = common::bench_client(&pki, load_port);
                let mut lat = Vec::new();
                let mut errors = 0;
                for k in 0..LOAD_PER_CLIENT {
                    let t = Instant::now();
                    match c.emergency_info(&inquiry(&format!("L{i}-{k}"), &q)).await {
                        Ok(_) => lat.push(ms(t.elapsed())),
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors)
            });
        }
        let mut all = Vec::new();
        let mut errors = 0;
        while let Some(r) = tasks.join_next().await {
            let (lat, e) = r.unwrap();
            all.extend(lat);
            errors += e;
        }
        let wall = started.elapsed().as_secs_f64();
        let n = all.len();
        let p50 = common::quantile(&mut all, 0.5);
        let p99 = common::quantile(&mut all, 0.99);
        md.push_str(&format!(
            "\n## Simulator under load: {LOAD_CLIENTS} concurrent tablets\n\nCommand: `cargo bench --bench eligibility`. Each tablet opens its own mTLS connection (full handshake) and makes {LOAD_PER_CLIENT} emergency-info inquiries; loopback, no added delay, both sides in one process on this 2-core machine.\n\n| inquiries | errors | wall time | throughput | p50 | p99 |\n|---|---|---|---|---|---|\n| {n} | {errors} | {wall:.2} s | {:.0} /s | {p50:.2} ms | {p99:.2} ms |\n",
            n as f64 / wall
        ));
    });
    drop(pki_dir);
    std::fs::write(out_dir.join("eligibility.md"), &md).unwrap();
    println!("{md}");
}
