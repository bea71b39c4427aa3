//! docs/OPERATIONS.md, the department's manual, held to the real CLI: every
//! `mynakyukyu-admin` line it quotes names a command and options that exist (a command or
//! option renamed later fails here), and the ones that need nothing but a tablet's data
//! dir run for real on a freshly enrolled one.

mod common;

use std::path::Path;
use std::process::Command;

/// The `mynakyukyu-admin …` lines of the manual's code blocks, without `sudo`.
fn quoted_commands() -> Vec<Vec<String>> {
    let manual =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/OPERATIONS.md"))
            .expect("docs/OPERATIONS.md");
    let mut in_block = false;
    let mut out = vec![];
    for line in manual.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        let words: Vec<String> = line
            .split_whitespace()
            .skip_while(|w| *w == "sudo")
            .map(str::to_string)
            .collect();
        if in_block && words.first().is_some_and(|w| w == "mynakyukyu-admin") {
            out.push(words[1..].to_vec());
        }
    }
    out
}

fn admin(data: Option<&Path>, args: &[String]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mynakyukyu-admin"));
    if let Some(d) = data {
        c.arg("--data-dir").arg(d);
    }
    common::no_tpm(&mut c);
    c.args(args).output().expect("mynakyukyu-admin runs")
}

#[test]
fn every_command_the_manual_quotes_exists_with_its_options() {
    let commands = quoted_commands();
    assert!(commands.len() >= 15, "{} commands quoted", commands.len());
    for words in &commands {
        // the subcommand path: words up to the first option or placeholder
        let path: Vec<String> = words
            .iter()
            .take_while(|w| !w.starts_with('-') && !w.starts_with('<'))
            .cloned()
            .collect();
        let mut help = path.clone();
        help.push("--help".into());
        let o = admin(None, &help);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "`mynakyukyu-admin {}`: not a command: {}",
            words.join(" "),
            String::from_utf8_lossy(&o.stderr)
        );
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            assert!(
                text.contains(flag.as_str()),
                "`mynakyukyu-admin {}`: {flag} is not an option of {path:?}",
                words.join(" ")
            );
        }
    }
}

#[test]
fn the_manuals_commands_that_need_only_the_data_dir_run_on_an_enrolled_tablet() {
    let d = common::TempDir::new("operations");
    let data = d.path().join("tablet");
    common::enrol(
        &data,
        "https://localhost:1",
        &["--allow-file-keys"],
        &common::no_tpm,
    );
    let leaflet = d.path().join("leaflet.html");
    let fill = |w: &str| -> String {
        match w {
            "<本部名と課>" => "みなと市消防本部 警防課".into(),
            "<電話番号>" => "03-1234-5678".into(),
            "<受付時間>" => "平日8:30〜17:15".into(),
            "<leaflet.html>" => leaflet.to_string_lossy().into_owned(),
            other => other.into(),
        }
    };
    let runnable = [
        "status",
        "crew list",
        "audit export --format bundle",
        "contact",
        "leaflet",
    ];
    let mut ran = vec![];
    for words in quoted_commands() {
        let line = words.join(" ");
        if !runnable.iter().any(|r| line.starts_with(r)) {
            continue;
        }
        let args: Vec<String> = words.iter().map(|w| fill(w)).collect();
        assert!(
            args.iter().all(|a| !a.starts_with('<')),
            "a placeholder this test cannot fill: {line}"
        );
        let o = admin(Some(&data), &args);
        assert!(
            o.status.success(),
            "`mynakyukyu-admin {line}`: {}",
            common::output_text(&o)
        );
        ran.push(line);
    }
    assert!(ran.len() >= 5, "ran {ran:?}");
    assert!(
        std::fs::read_to_string(&leaflet)
            .unwrap()
            .contains("TEL 03-1234-5678")
    );
}
