//! The eligibility simulator: synthetic patients and, as they land, the mTLS server and the
//! virtual card.

use clap::{Parser, Subcommand};
use mynakyukyu::cli::CommonArgs;
use mynakyukyu::sim::patients::{self, DEFAULT_POPULATION, DEFAULT_SEED};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "mynakyukyu-sim",
    version,
    about = "Eligibility simulator for drills and tests"
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the synthetic patients (scenario patients first).
    Patients {
        /// A JSON array of {"id", "name", "kana", "age", "sex", "scenario"}.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = DEFAULT_SEED)]
        seed: u64,
        #[arg(long, default_value_t = DEFAULT_POPULATION)]
        count: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.common.init_logging();
    match cli.command {
        Command::Patients { json, seed, count } => {
            let today = time::OffsetDateTime::now_utc().date();
            let list = patients::population(seed, count, today);
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "id": p.id,
                            "name": p.name,
                            "kana": p.kana,
                            "age": mynakyukyu::domain::age_on(p.birth_date, today),
                            "sex": p.sex,
                            "scenario": p.scenario.map(|s| s.name()),
                        })
                    })
                    .collect();
                match serde_json::to_string_pretty(&rows) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                for p in &list {
                    println!(
                        "{}\t{}\t{}\t{}",
                        p.id,
                        p.name,
                        mynakyukyu::domain::age_on(p.birth_date, today),
                        p.scenario.map(|s| s.name()).unwrap_or("-")
                    );
                }
            }
            ExitCode::SUCCESS
        }
    }
}
