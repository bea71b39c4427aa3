//! The tablet app's own figures: cold start to the first frame, resident memory at Ready and
//! after incidents, and the machine's share of the path card → summary at 0 and 50 ms RTT
//! (the crew's taps excluded). Writes a Markdown fragment for docs/BENCHMARKS.md.
//! Run: `cargo bench --bench app` (or `scripts/bench app`).
//!
//! Start-up is the real binary in a real window: Xvfb (started here, stopped by PID), winit
//! and the software renderer, in training mode (the built-in simulator starts with it).
//! Incidents run in this process: the app's controller with the training world (simulator
//! behind the delay proxy, in-process virtual reader) and the app's window on Slint's
//! software renderer, a frame rendered after every step as the screen would show it.

mod common;

use mynakyukyu::app::Controller;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

const START_RUNS: usize = 15;
const INCIDENTS_PER_RTT: usize = 30;
const GROWTH_INCIDENTS: usize = 100;

struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        let n = (90..200)
            .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
            .expect("a free X display number");
        let display = format!(":{n}");
        // -noreset: no server reset (which refuses connections) when a client leaves
        let child = Process::new("Xvfb")
            .arg(&display)
            .args(["-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .arg("-noreset")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (scripts/setup installs xvfb)");
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "Xvfb did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Xvfb { child, display }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One start of the app binary: spawn → the `ready` line (first frame rendered), in ms,
/// and the RSS it reported.
fn start_once(display: &str, data: &Path) -> (f64, u64) {
    let t = Instant::now();
    let mut child = Process::new(env!("CARGO_BIN_EXE_mynakyukyu"))
        .args(["--training", "--exit-when-ready", "--log-format", "json"])
        .arg("--data-dir")
        .arg(data)
        .env("DISPLAY", display)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the app binary");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let status = child.wait().unwrap();
    assert!(
        status.success() && line.starts_with("ready frame=1280x800"),
        "app start failed: {status} {line}"
    );
    let rss = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rss_kib="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (ms, rss)
}

fn main() {
    if common::listing() {
        return;
    }
    let out_dir = common::out_dir();
    let tmp_dir = common::TempDir::new("bench-app");
    let tmp = tmp_dir.path().to_path_buf();
    let mut md = String::from("## The tablet app (`cargo bench --bench app`)\n\n");

    // --- cold start, in a real window
    let binary_size = std::fs::metadata(env!("CARGO_BIN_EXE_mynakyukyu"))
        .map(|m| m.len())
        .unwrap_or(0);
    let xvfb = Xvfb::start();
    let data = tmp.join("start");
    let (first_ms, _) = start_once(&xvfb.display, &data);
    let mut start_ms = vec![];
    let mut start_rss = vec![];
    for _ in 0..START_RUNS {
        let (ms, rss) = start_once(&xvfb.display, &data);
        start_ms.push(ms);
        start_rss.push(rss as f64 / 1024.0);
    }
    drop(xvfb);
    let start_p50 = common::quantile(&mut start_ms, 0.5);
    let start_p95 = common::quantile(&mut start_ms, 0.95);
    let rss_p50 = common::quantile(&mut start_rss, 0.5);
    md.push_str(&format!(
        "Cold start: the binary `mynakyukyu --training` in an Xvfb window (winit, \
software renderer), from spawn to its first full frame of the first screen at 1280×800 \
(the hidden `--exit-when-ready` flag renders it with `take_snapshot` and prints the RSS), \
the built-in simulator and training store up. {START_RUNS} starts on one data dir after a \
first start on an empty one (which also generates the development PKI).\n\n\
| figure | value | target |\n|---|---|---|\n\
| cold start, median | {start_p50:.0} ms | < 1000 ms |\n\
| cold start, p95 | {start_p95:.0} ms | |\n\
| first start on an empty data dir (PKI generated) | {first_ms:.0} ms | |\n\
| resident memory at the first frame, median | {rss_p50:.1} MiB | < 150 MB |\n\
| binary size ({} profile, unstripped) | {:.1} MiB | |\n\n",
        if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        },
        binary_size as f64 / (1024.0 * 1024.0)
    ));

    // --- incidents, in this process
    let (rt, world, _, patient) = common::training_world(&tmp.join("training"));
    let (controller, _) = Controller::new(world.ports().unwrap(), world.settings());
    let mut rig = common::AppRig::signed_in(rt, controller);
    let incident = |rig: &mut common::AppRig| {
        world.place_card(&patient).unwrap();
        rig.incident()
    };
    let rss_ready = common::rss_mib();

    md.push_str(&format!(
        "Card → summary, machine time: the app's controller and window in one process (the \
bench), the training world's simulator behind its delay proxy, the in-process virtual \
reader; a frame of the app window (1280×800, software renderer) is rendered after every \
step and counted. \"card\" is card presence → the identity+consent screen's frame (card \
read, qualification check); \"consent\" is the consent tap → the summary's frame \
(emergency-info inquiry, store append, audit). The photo-confirmation tap is not counted. \
{INCIDENTS_PER_RTT} incidents per RTT after one warm-up incident.\n\n\
| RTT | card, median | card, p95 | consent → summary, median | p95 | target for consent → summary |\n\
|---|---|---|---|---|---|\n"
    ));
    let mut rss_after_10 = 0.0;
    let mut done = 0;
    for rtt in [0u64, 50] {
        world.proxy.set_rtt(Duration::from_millis(rtt));
        incident(&mut rig); // warm-up: the connection at this RTT
        done += 1;
        let (mut card, mut consent) = (vec![], vec![]);
        for _ in 0..INCIDENTS_PER_RTT {
            let i = incident(&mut rig);
            card.push(i.card_ms);
            consent.push(i.consent_ms);
            done += 1;
            if done == 10 {
                rss_after_10 = common::rss_mib();
            }
        }
        md.push_str(&format!(
            "| {rtt} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | < {} ms |\n",
            common::quantile(&mut card, 0.5),
            common::quantile(&mut card, 0.95),
            common::quantile(&mut consent, 0.5),
            common::quantile(&mut consent, 0.95),
            rtt + 150
        ));
    }
    world.proxy.set_rtt(Duration::ZERO);
    let before_growth = done;
    while done < before_growth + GROWTH_INCIDENTS {
        incident(&mut rig);
        done += 1;
    }
    let rss_end = common::rss_mib();
    let hwm_end = mynakyukyu::cli::resident_memory_kib().1.unwrap_or(0) as f64 / 1024.0;
    md.push_str(&format!(
        "\nResident memory of that process (controller, window, renderer, simulator, store, \
virtual reader):\n\n\
| when | RSS |\n|---|---|\n\
| Ready (signed in, no incident yet) | {:.1} MiB |\n\
| after 10 incidents | {:.1} MiB |\n\
| after {done} incidents | {:.1} MiB (peak {:.1} MiB) |\n",
        rss_ready, rss_after_10, rss_end, hwm_end,
    ));
    rig.rt.block_on(world.shutdown());
    std::fs::write(out_dir.join("app.md"), md).unwrap();
    drop(tmp_dir);
}
