//! The tablet app. With no command it runs its main job on the embedded default: training
//! mode against the built-in simulator.

use clap::{Parser, Subcommand};
use mynakyukyu::cli::CommonArgs;
use mynakyukyu::drill;
use mynakyukyu::store::{DeviceKey, Store};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "mynakyukyu",
    version,
    about = "マイナ救急: the ambulance tablet app"
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Force training mode (訓練モード) against the built-in simulator.
    #[arg(long)]
    training: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Wait for a card, read its user-authentication certificate, print serial, issuer and
    /// validity.
    CardInfo {
        /// Use this reader only (default: the first reader that has a card).
        #[arg(long)]
        reader: Option<String>,
        /// Write the certificate (DER) here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Run one scripted drill end to end and write the debrief.
    Drill {
        /// Scenario name (see --list).
        #[arg(long, required_unless_present = "list")]
        scenario: Option<String>,
        /// Print the scenario names, one per line.
        #[arg(long)]
        list: bool,
        /// Run without a display.
        #[arg(long)]
        headless: bool,
        /// Write the debrief report (JSON) here.
        #[arg(long)]
        report: Option<PathBuf>,
    },
}

/// The drill the app runs when started with no command, until the screens exist.
const DEFAULT_SCENARIO: &str = "unconscious-warfarin";

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.common.init_logging();
    let result = match cli.command {
        Some(Command::CardInfo {
            reader,
            out,
            timeout,
        }) => card_info(reader.as_deref(), out, timeout),
        Some(Command::Drill { list: true, .. }) => {
            for name in drill::scenario_names() {
                println!("{name}");
            }
            Ok(true)
        }
        Some(Command::Drill {
            scenario, report, ..
        }) => run_drill(
            &cli.common,
            scenario.as_deref().unwrap_or(DEFAULT_SCENARIO),
            report,
        ),
        None => {
            tracing::info!(
                training = true,
                "starting in training mode (device not provisioned)"
            );
            run_drill(&cli.common, DEFAULT_SCENARIO, None)
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Training keeps its own data: `<data dir>/training/` (store and its key).
fn training_store(common: &CommonArgs) -> Result<Store, Box<dyn std::error::Error>> {
    let dir = common.data_dir().join("training");
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create training data dir {}: {e}", dir.display()))?;
    let key = DeviceKey::load_or_create(&dir.join("store.key"))?;
    Ok(Store::open(&dir.join("store"), &key)?)
}

fn run_drill(
    common: &CommonArgs,
    name: &str,
    report_path: Option<PathBuf>,
) -> Result<bool, Box<dyn std::error::Error>> {
    let scenario = drill::scenario(name)?;
    let today = time::OffsetDateTime::now_utc().date();
    let store = training_store(common)?;
    let report = drill::run(&scenario, today, Some(&store))?;
    tracing::info!(
        scenario = name,
        records = report.stored_records,
        "drill finished"
    );
    print!("{}", drill::render_text(&report));
    if let Some(path) = report_path {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(&path, json)
            .map_err(|e| format!("cannot write report {}: {e}", path.display()))?;
    }
    Ok(report.passed)
}

fn card_info(
    reader: Option<&str>,
    out: Option<PathBuf>,
    timeout: u64,
) -> Result<bool, Box<dyn std::error::Error>> {
    use mynakyukyu::card::{jpki, pcsc_reader::Pcsc};
    let pcsc = Pcsc::establish()?;
    eprintln!("waiting for a card…");
    let name = pcsc.wait_for_card(reader, std::time::Duration::from_secs(timeout))?;
    let mut card = pcsc.connect(&name)?;
    let read = jpki::read_auth_certificate(&mut card)?;
    let summary = mynakyukyu::pki::inspect(&read.der, time::OffsetDateTime::now_utc())?;
    println!("reader:     {name}");
    println!("serial:     {}", summary.serial_hex);
    println!("issuer:     {}", summary.issuer);
    println!("not before: {}", summary.not_before);
    println!("not after:  {}", summary.not_after);
    println!(
        "validity:   {:?} ({} days left)",
        summary.validity, summary.days_left
    );
    println!("apdus:      {}", read.apdus);
    if let Some(path) = out {
        std::fs::write(&path, &read.der).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(summary.validity == mynakyukyu::pki::Validity::Valid)
}
