//! The headless drill through the real binary: every scenario follows its expected path,
//! and the debrief carries no patient names.

#[path = "../common/mod.rs"]
mod common;

mod scenarios;
mod thief;

pub use common::TempDir;
pub use serde_json::Value;
pub use std::process::Command;

/// The app with its data dir in a temp dir shared by this test process.
fn app() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mynakyukyu"));
    c.env("MYNAKYUKYU_DATA", shared_data_dir());
    c
}

fn shared_data_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| TempDir::new("drill-data")).path()
}

fn scenario_names() -> Vec<String> {
    let out = app().args(["drill", "--list"]).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn patients() -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_mynakyukyu-sim"))
        .args(["patients", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Run one headless drill with its data dir under `dir`, passing `flag PATH`.
fn drill_into(dir: &std::path::Path, scenario: &str, flag: &str, path: &std::path::Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_mynakyukyu"))
        .args(["drill", "--scenario", scenario, "--headless", flag])
        .arg(path)
        .env("MYNAKYUKYU_DATA", dir.join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
