//! The crew's time from the first 受入照会 to 搬送決定, asking one hospital at a time (as
//! phone calls do) and five at once, side by side in one run on the same draws: the real
//! hub on loopback (mutual TLS, SQLite), the tablet's flow ([`CrewFlow`]) driving the hub's
//! client, simulated emergency departments answering with a spread of times and
//! acceptance rates. Time is scaled: one simulated second is one real millisecond, so a
//! request and its answers cost the hub its real round trips on top (a few "seconds").
//! Also counted: the crew's taps and the screens it passes.
//!
//! The departments (the figures and where they come from are in the fragment): each asked
//! hospital accepts with probability `p`, independently, and answers after a time drawn
//! uniformly from 60–240 s. Declines and 要電話 both count as "not this one".
//!
//! Run: `cargo bench --bench handoff` (or `scripts/bench handoff`).

mod common;

use common::support::{TempDir, pki};
use mynakyukyu::handoff::crew::{CaseState, CrewFlow, Effect, Input, Known, Step};
use mynakyukyu::handoff::{Answer, Complaint, DeclineReason, HospitalCode};
use mynakyukyu::hub::client::HubClient;
use mynakyukyu::hub::store::{HubStore, hospital_audience};
use mynakyukyu::hub::tablet::{AskRequest, DecideRequest};
use mynakyukyu::hub::{Hub, HubCore, HubOptions, admin};
use sha2::Digest;
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOSPITALS: usize = 20;
const CASES: usize = 40;
/// Simulated seconds per real millisecond.
const SCALE: f64 = 1.0;

/// A department population: a name, the chance one accepts, and where it comes from.
struct Profile {
    name: &'static str,
    accept: f64,
    source: &'static str,
}

const PROFILES: [Profile; 2] = [
    Profile {
        name: "東京都 2023 重症以上",
        accept: 0.45,
        source: "FDMA 令和5年 受入れ状況等実態調査, 東京都 重症以上: 照会1回 25,842 件, 2回 8,194, 3回 4,368, 4回 2,664, 5回 1,753 …: the k-th hospital accepts after k−1 refusals in 56 %, 40 %, 36 %, 34 %, 34 % of cases; 0.45 is their mean",
    },
    Profile {
        name: "北海道 2023 重症以上",
        accept: 0.75,
        source: "same survey, 北海道 重症以上: 照会1回 18,939, 2回 2,385, 3回 908, 4回 434 …: 81 % at the first, 55 % at the second; 0.75 between them",
    },
];

/// A draw in [0, 1) for (profile, case, hospital, what): the same for both ways of asking.
fn draw(profile: &str, case: usize, hospital: usize, what: &str) -> f64 {
    let h = sha2::Sha256::digest(format!("{profile}/{case}/{hospital}/{what}").as_bytes());
    let n = u64::from_be_bytes(h[..8].try_into().unwrap_or([0; 8]));
    (n >> 11) as f64 / (1u64 << 53) as f64
}

fn code(i: usize) -> HospitalCode {
    HospitalCode(format!("H{i:02}"))
}

/// Answer every request to every hospital as the profile says, until the hub stops. The
/// request's incident id is `profile|case`.
fn departments(core: Arc<HubCore>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut wake = core.subscribe();
        let mut seen = [core.store.last_event().await.unwrap_or(0); HOSPITALS];
        loop {
            for (i, last) in seen.iter_mut().enumerate() {
                let hospital = code(i);
                let Ok(events) = core
                    .store
                    .events_after(&hospital_audience(&hospital), *last)
                    .await
                else {
                    continue;
                };
                for e in events {
                    *last = (*last).max(e.seq);
                    if e.kind != "request" {
                        continue;
                    }
                    let Ok(case) = core.case(&e.case_id).await else {
                        continue;
                    };
                    let Some((profile, n)) = case.body.incident_id.split_once('|') else {
                        continue;
                    };
                    let n: usize = n.parse().unwrap_or(0);
                    let p = PROFILES
                        .iter()
                        .find(|x| x.name == profile)
                        .map_or(0.5, |x| x.accept);
                    let after = 60.0 + 180.0 * draw(profile, n, i, "time");
                    let answer = if draw(profile, n, i, "accept") < p {
                        Answer::Accept
                    } else if draw(profile, n, i, "kind") < 0.15 {
                        Answer::CallUs {
                            phone: "000-0000-0000".into(),
                        }
                    } else {
                        Answer::Decline {
                            reason: DeclineReason::BedsFull,
                        }
                    };
                    let (core, hospital) = (core.clone(), hospital.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs_f64(after * SCALE / 1000.0)).await;
                        let _ = core.answer(&hospital, "bench", &e.case_id, answer).await;
                    });
                }
            }
            tokio::select! {
                _ = wake.recv() => {}
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
    })
}

/// One case as the crew ran it: (simulated seconds to 搬送決定, hospitals asked, taps,
/// screens shown).
type CaseRun = (f64, usize, usize, usize);

async fn run_case(hub: &HubClient, profile: &str, n: usize, batch: usize) -> CaseRun {
    let (mut flow, _) = CrewFlow::open(false);
    let started = Instant::now();
    let now = |t: Instant| (t.elapsed().as_secs_f64() * 1000.0) as i64;
    let mut taps = 1; // 搬送先照会
    let mut screens = 1; // the findings
    let list = hub.hospitals().await.expect("the hospital list");
    flow.handle(
        now(started),
        Input::HospitalsLoaded(list.hospitals.into_iter().map(Into::into).collect()),
    );
    flow.handle(now(started), Input::Complaint(Complaint::ChestPain));
    flow.handle(now(started), Input::ToHospitals);
    taps += 2;
    screens += 1;
    loop {
        // choose the next `batch` hospitals in the list, send
        let next: Vec<HospitalCode> = flow
            .hospitals
            .iter()
            .take(batch)
            .map(|h| h.code.clone())
            .collect();
        assert!(!next.is_empty(), "every hospital asked: none accepted");
        for c in next {
            flow.handle(now(started), Input::ToggleHospital(c));
            taps += 1;
        }
        let fx = flow.handle(now(started), Input::Send);
        taps += 1;
        let Some(Effect::Ask {
            candidates,
            findings,
        }) = fx.into_iter().next()
        else {
            panic!("no request");
        };
        let request = AskRequest {
            incident_id: format!("{profile}|{n}"),
            candidates,
            disclosure: CrewFlow::disclosure(&findings, &Known::default(), "000-0000-0119"),
        };
        let view = hub.ask(&request).await.expect("受入照会");
        let case_id = view.case_id.clone();
        flow.handle(now(started), Input::Sent(view.into()));
        screens += 1; // the answers
        let mut events = hub.events(&case_id, None).await.expect("the case's events");
        loop {
            let (_, view) = events
                .next_view()
                .await
                .expect("an event")
                .expect("the stream stays open");
            let state: CaseState = view.into();
            let all_answered = state.candidates.iter().all(|c| c.answer.is_some());
            flow.handle(now(started), Input::Case(state));
            let accepting = flow.case.as_ref().and_then(|c| {
                c.candidates
                    .iter()
                    .find(|x| {
                        x.answer
                            .as_ref()
                            .is_some_and(|a| a.answer == Answer::Accept)
                    })
                    .map(|x| x.code.clone())
            });
            if let Some(hospital) = accepting {
                let fx = flow.handle(now(started), Input::Decide(hospital.clone()));
                taps += 1;
                assert!(matches!(fx.first(), Some(Effect::Decide { .. })));
                let decided = hub
                    .decide(
                        &case_id,
                        &DecideRequest {
                            hospital,
                            packet: mynakyukyu::handoff::Packet::unidentified(
                                mynakyukyu::domain::Sex::NotKnown,
                                vec![],
                            ),
                        },
                    )
                    .await
                    .expect("搬送決定");
                flow.handle(now(started), Input::Decided(decided.into(), String::new()));
                assert_eq!(flow.step, Step::Decided);
                let ms = flow.time_to_decision_ms().unwrap_or(0) as f64;
                return (
                    ms / SCALE,
                    flow.asked_before.len() + flow.selected.len(),
                    taps,
                    screens,
                );
            }
            if all_answered {
                flow.handle(now(started), Input::AskMore);
                let _ = hub.close(&case_id).await;
                taps += 1;
                screens += 1; // back to the hospitals
                break;
            }
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    common::quantile(v, 0.5)
}

fn main() {
    if common::listing() {
        return;
    }
    let rt = common::runtime();
    let data = TempDir::new("bench-handoff");
    let keys = TempDir::new("bench-handoff-keys");
    let options = HubOptions::loopback(
        data.path().to_path_buf(),
        keys.path().join("seal.key"),
        pki().to_path_buf(),
    );
    let (hub, responders) = rt.block_on(async {
        let store = HubStore::open(data.path()).await.unwrap();
        admin::trust_ca(
            &store,
            &std::fs::read_to_string(pki().join("ca.pem")).unwrap(),
        )
        .await
        .unwrap();
        for i in 0..HOSPITALS {
            admin::add_hospital(
                &store,
                &code(i).0,
                &format!("病院{i:02}"),
                &["救急科".into()],
            )
            .await
            .unwrap();
        }
        store.close().await;
        let hub = Hub::start(options).await.unwrap();
        let responders = departments(hub.core.clone());
        (hub, responders)
    });
    let identity = mynakyukyu::eligibility::UnitIdentity::from_files(
        &pki().join("unit.pem"),
        &pki().join("unit.key"),
        &pki().join("ca.pem"),
    )
    .unwrap();
    let client = HubClient::new(
        mynakyukyu::eligibility::client::tls_config(identity).unwrap(),
        "localhost",
        hub.tablet_addr.port(),
    );
    let mut rows = vec![];
    for profile in &PROFILES {
        let mut results: Vec<(usize, Vec<CaseRun>)> = vec![];
        for batch in [1usize, 5] {
            let mut r = vec![];
            for n in 0..CASES {
                r.push(rt.block_on(run_case(&client, profile.name, n, batch)));
            }
            results.push((batch, r));
        }
        let mut medians = vec![];
        for (batch, r) in &results {
            let mut minutes: Vec<f64> = r.iter().map(|x| x.0 / 60.0).collect();
            let mut asked: Vec<f64> = r.iter().map(|x| x.1 as f64).collect();
            let mut taps: Vec<f64> = r.iter().map(|x| x.2 as f64).collect();
            let mut screens: Vec<f64> = r.iter().map(|x| x.3 as f64).collect();
            let m = median(&mut minutes);
            medians.push(m);
            rows.push(format!(
                "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} |",
                profile.name,
                if *batch == 1 {
                    "one at a time (as by phone)".to_string()
                } else {
                    "five at once".to_string()
                },
                r.len(),
                m,
                common::quantile(&mut minutes, 0.9),
                median(&mut asked),
                median(&mut taps),
                median(&mut screens),
            ));
        }
        rows.push(format!(
            "| {} | ratio one-at-a-time / five-at-once (median) | | {:.2} | | | | |",
            profile.name,
            medians[0] / medians[1]
        ));
    }
    responders.abort();
    rt.block_on(hub.shutdown());
    let fragment = format!(
        "## Hand-off: time from the first 受入照会 to 搬送決定\n\n\
         `cargo bench --bench handoff`: the real hub on loopback (mutual TLS, SQLite), the tablet's flow \
         (`handoff::crew::CrewFlow`) driving the hub's client, {HOSPITALS} simulated emergency departments; \
         {CASES} cases per row, the same draws for both ways of asking (case n meets the same answers from \
         the same hospitals, in the same list order). One simulated second is one real millisecond, so the \
         hub's own round trips add a little to both. Each hospital answers after 60–240 s (uniform; an \
         assumption: the survey counts requests, not minutes) and accepts with the profile's probability; \
         the rest decline (15 % of them 要電話, also \"not this one\"). Asking one at a time, the crew asks \
         the next after each refusal; five at once, it asks the next five when all five said no. Taps: \
         搬送先照会, the complaint, 病院を選ぶ, each hospital, 照会送信, 別の病院に照会, 搬送決定; screens: each \
         screen shown (findings, hospitals, answers, and again per further request).\n\n\
         Profiles: {}.\n\n\
         | departments | asking | cases | median min to 搬送決定 | p90 min | hospitals asked (median) | taps (median) | screens (median) |\n\
         |---|---|---|---|---|---|---|---|\n{}\n",
        PROFILES
            .iter()
            .map(|p| format!("{} (accepts {:.2}): {}", p.name, p.accept, p.source))
            .collect::<Vec<_>>()
            .join("; "),
        rows.join("\n")
    );
    let out = common::out_dir().join("handoff.md");
    std::fs::write(&out, &fragment).unwrap();
    println!("{fragment}");
}
