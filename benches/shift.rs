//! A long shift: the app's own memory over 1,000 incidents, with the simulator in a process
//! of its own (`mynakyukyu-sim serve`, started here and stopped by PID), so the figure is the
//! app's and not the server's. This process plays the tablet app: the controller, its window
//! on the software renderer (a frame after every step), the store, the in-process virtual
//! reader, the eligibility client over mutual TLS to the simulator process. (The training
//! world that makes the PKI, roster and store also starts its own simulator here, which
//! stays idle: no request reaches it.) Resident memory of both processes is read from
//! /proc every 100 incidents. Writes a Markdown fragment for docs/BENCHMARKS.md.
//! Run: `cargo bench --bench shift` (or `scripts/bench shift`; `BENCH_SHIFT_INCIDENTS`).

mod common;

use mynakyukyu::app::Controller;
use std::sync::Arc;

/// Resident memory of another process, in MiB.
fn rss_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn main() {
    if common::listing() {
        return;
    }
    let incidents = common::count("BENCH_SHIFT_INCIDENTS", 1000).max(100);
    let out_dir = common::out_dir();
    let tmp_dir = common::TempDir::new("bench-shift");
    let tmp = tmp_dir.path().to_path_buf();
    let (rt, world, _, patient) = common::training_world(&tmp.join("training"));
    let pki = world.dir.join("pki");

    // the simulator, in a process of its own, on a free port it prints
    let sim = common::SimProcess::start_with(&pki, &[]);
    let port = sim.port;
    let sim_pid = sim.pid();

    let mut ports = world.ports().expect("ports");
    ports.client = Arc::new(common::bench_client(&pki, port));
    ports.endpoint_addr = Some([127, 0, 0, 1].into());
    let (controller, _) = Controller::new(ports, world.settings());
    let mut rig = common::AppRig::signed_in(rt, controller);
    let incident = |rig: &mut common::AppRig| {
        world.place_card(&patient).expect("card");
        rig.incident()
    };
    for _ in 0..10 {
        incident(&mut rig);
    }
    let mut rows = vec![(10, common::rss_mib(), rss_of(sim_pid))];
    for done in 11..=incidents {
        incident(&mut rig);
        if done % 100 == 0 || done == incidents {
            rows.push((done, common::rss_mib(), rss_of(sim_pid)));
        }
    }
    let hwm = mynakyukyu::cli::resident_memory_kib().1.unwrap_or(0) as f64 / 1024.0;
    let (first_app, last_app) = (rows[0].1, rows[rows.len() - 1].1);
    let min_app = rows.iter().map(|r| r.1).fold(f64::MAX, f64::min);
    let max_app = rows.iter().map(|r| r.1).fold(0.0, f64::max);
    let mut md = format!(
        "## A long shift: the app's memory alone (`cargo bench --bench shift`)\n\n\
The app's controller, window (software renderer, a frame after every step), store and \
virtual reader in this process; the simulator in its own process (`mynakyukyu-sim serve`), \
reached over mutual TLS on loopback. One incident = card, photo, 同意取得困難, summary, \
閲覧終了. Resident memory read from /proc. ({} build)\n\n\
| incidents | app RSS | simulator RSS |\n|---|---|---|\n",
        if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        }
    );
    for (n, app, sim) in &rows {
        md.push_str(&format!("| {n} | {app:.1} MiB | {sim:.1} MiB |\n"));
    }
    md.push_str(&format!(
        "\nThe app from incident 10 to {incidents}: {:+.1} MiB (range {:.1}–{:.1} MiB, peak \
{hwm:.1} MiB).\n",
        last_app - first_app,
        min_app,
        max_app
    ));
    print!("{md}");
    std::fs::write(out_dir.join("shift.md"), md).expect("write shift.md");
    rig.rt.block_on(world.shutdown());
    drop(sim);
    drop(tmp_dir);
}
