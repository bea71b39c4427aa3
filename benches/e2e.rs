//! End to end, machine time, against the physical floor: the app's controller reading a
//! virtual card through pcscd + vsmartcard-vpcd (the `PcscReader` the tablet uses, its
//! presence watch included), the simulator behind the delay proxy at 0, 50 and 150 ms RTT,
//! records sealed into the store, and a frame of the app window rendered with the software
//! renderer after every step. Then growth: 1,000 incidents in a row. Writes a Markdown
//! fragment for docs/BENCHMARKS.md. Starts pcscd if none serves the vpcd readers.
//! Run: `cargo bench --bench e2e` (or `scripts/bench e2e`).

mod common;

use mynakyukyu::app::Controller;
use mynakyukyu::app::reader::PcscReader;
use mynakyukyu::card::pcsc_reader::Pcsc;
use mynakyukyu::card::{Transport, apdu, virtual_card::JPKI_AID, vpcd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const RAW_APDUS: usize = 200;

/// User + system CPU time of this process, in seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // the fields after the command name (which may hold spaces) start at state (3rd)
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after state; clock ticks of 1/100 s
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

fn main() {
    if common::listing() {
        return;
    }
    let out_dir = common::out_dir();
    #[allow(non_snake_case)]
    let (PER_RTT, GROWTH) = (
        common::count("BENCH_E2E_PER_RTT", 50),
        common::count("BENCH_E2E_GROWTH", 1000).max(60),
    );
    let tmp_dir = common::TempDir::new("bench-e2e");
    let tmp = tmp_dir.path().to_path_buf();
    let _pcscd = common::pcscd(2);
    let reader_name = common::vpcd_readers()[0].clone();

    let (rt, world, today, patient) = common::training_world(&tmp.join("training"));

    // the patient's card, issued from the training PKI, in vpcd's first reader
    let (card, _) =
        mynakyukyu::sim::patient_card(&world.dir.join("pki"), &patient, "1234", today).unwrap();
    let apdus = vpcd::keep_inserted(card, "127.0.0.1:35963");
    let (presence_tx, mut presence) = tokio::sync::mpsc::channel(8);
    let (reader, _watch) = PcscReader::watch(presence_tx);
    let t = Instant::now();
    let placed =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(15), presence.recv()).await });
    assert_eq!(placed, Ok(Some(true)), "the presence watch saw the card");
    let presence_ms = t.elapsed().as_secs_f64() * 1e3;

    // the floor per APDU: a bare SELECT round trip through pcscd and vpcd
    let mut raw = vec![];
    {
        let pcsc = Pcsc::establish().unwrap();
        let mut c = pcsc.connect(&reader_name).unwrap();
        let select = apdu::select_df(&JPKI_AID);
        for _ in 0..RAW_APDUS {
            let t = Instant::now();
            c.transmit(&select).unwrap();
            raw.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let apdu_ms = common::quantile(&mut raw, 0.5);

    let mut ports = world.ports().unwrap();
    ports.reader = reader;
    let (controller, _) = Controller::new(ports, world.settings());
    let mut rig = common::AppRig::signed_in(rt, controller);
    // the APDUs of each incident, counted on the card
    let incident = |rig: &mut common::AppRig| {
        let before = apdus.load(Ordering::Relaxed);
        let i = rig.incident();
        (i, apdus.load(Ordering::Relaxed) - before)
    };

    let mut md = format!(
        "## End to end through pcscd + vpcd, against the physical floor (`cargo bench --bench e2e`)\n\n\
The app's controller with the tablet's `PcscReader` (pcscd + vsmartcard-vpcd, the virtual \
card issued from the training PKI), the simulator behind the delay proxy, the store, and a \
1280×800 frame of the app window rendered (software renderer) after every step, all in the \
bench process. \"card\": card presence → the identity+consent frame (connect, card read, \
qualification check, frame). \"consent\": the consent tap → the summary frame (inquiry, \
records sealed and flushed, frame). The photo tap is not counted. Floor: APDUs × the \
median bare APDU round trip through pcscd+vpcd ({apdu_ms:.3} ms, {RAW_APDUS} SELECTs) + \
one round trip per request (qualification; inquiry) + the frame's own render time. \
{PER_RTT} incidents per RTT after one warm-up. CPU is user+system time of the whole \
process (controller, simulator, proxy, renderer) per incident. First card presence seen by \
the watch {presence_ms:.0} ms after the card came up (pcscd polls vpcd).\n\n\
| RTT | card median / p95 | card floor | ratio | consent → summary median / p95 | floor | ratio | target | CPU per incident |\n\
|---|---|---|---|---|---|---|---|---|\n"
    );
    for rtt in [0u64, 50, 150] {
        world.proxy.set_rtt(Duration::from_millis(rtt));
        incident(&mut rig);
        let cpu0 = cpu_secs();
        let runs: Vec<(common::Incident, usize)> =
            (0..PER_RTT).map(|_| incident(&mut rig)).collect();
        let cpu_ms = (cpu_secs() - cpu0) * 1e3 / PER_RTT as f64;
        let q = |f: fn(&common::Incident) -> f64, p: f64| {
            let mut v: Vec<f64> = runs.iter().map(|(i, _)| f(i)).collect();
            common::quantile(&mut v, p)
        };
        let apdus = runs[0].1;
        let card_floor = apdus as f64 * apdu_ms + rtt as f64 + q(|s| s.consent_frame_ms, 0.5);
        let consent_floor = rtt as f64 + q(|s| s.summary_frame_ms, 0.5);
        let (c50, c95) = (q(|s| s.card_ms, 0.5), q(|s| s.card_ms, 0.95));
        let (s50, s95) = (q(|s| s.consent_ms, 0.5), q(|s| s.consent_ms, 0.95));
        md.push_str(&format!(
            "| {rtt} ms | {c50:.1} / {c95:.1} ms | {card_floor:.1} ms ({apdus} APDUs) | {:.2} | {s50:.1} / {s95:.1} ms | {consent_floor:.1} ms | {:.2} | < {} ms: {} | {cpu_ms:.1} ms |\n",
            c50 / card_floor,
            s50 / consent_floor,
            rtt + 150,
            if s50 < (rtt + 150) as f64 { "met" } else { "missed" },
        ));
    }

    // growth: 1,000 incidents in a row at 0 ms
    world.proxy.set_rtt(Duration::ZERO);
    let mut totals = vec![];
    let mut rss_10 = 0.0;
    for i in 0..GROWTH {
        let (s, _) = incident(&mut rig);
        totals.push(s.card_ms + s.consent_ms);
        if i == 9 {
            rss_10 = common::rss_mib();
        }
    }
    let rss_end = common::rss_mib();
    let first = common::quantile(&mut totals[..50].to_vec(), 0.5);
    let last = common::quantile(&mut totals[GROWTH - 50..].to_vec(), 0.5);
    let records = world.store.verify_chain().map(|r| r.checked).unwrap_or(0);
    md.push_str(&format!(
        "\nGrowth, {GROWTH} incidents in a row at 0 ms RTT (card + consent machine time):\n\n\
| figure | after the first | after {GROWTH} |\n|---|---|---|\n\
| median of 50 incidents | {first:.1} ms (incidents 1–50) | {last:.1} ms (incidents {}–{GROWTH}) |\n\
| resident memory | {rss_10:.1} MiB (after 10) | {rss_end:.1} MiB |\n\
| records in the store | | {records} |\n",
        GROWTH - 49
    ));
    rig.rt.block_on(world.shutdown());
    std::fs::write(out_dir.join("e2e.md"), &md).unwrap();
    println!("{md}");
    drop(tmp_dir);
}
