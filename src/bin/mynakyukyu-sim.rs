//! The eligibility simulator: synthetic patients and, as they land, the mTLS server and the
//! virtual card.

use clap::{Parser, Subcommand};
use mynakyukyu::cli::CommonArgs;
use mynakyukyu::eligibility::wire::Faults;
use mynakyukyu::sim::patients::{self, DEFAULT_POPULATION, DEFAULT_SEED};
use mynakyukyu::sim::server::{ServeOptions, SimServer};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// Serve protocol v1 over mutual TLS (TLS 1.3, client certificate required).
    Serve {
        /// Address to listen on; port 0 picks a free port (printed on stdout).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// The development PKI directory (`mynakyukyu-admin dev-pki --out DIR`).
        #[arg(long)]
        pki: PathBuf,
        /// Added latency before every answer, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Fraction (0-1) of requests answered 503.
        #[arg(long, default_value_t = 0.0)]
        error_rate: f64,
        /// Fraction (0-1) of requests answered by resetting the connection.
        #[arg(long, default_value_t = 0.0)]
        reset_rate: f64,
        /// Accept requests but never answer.
        #[arg(long)]
        stall: bool,
        /// Append every emergency-info inquiry as a JSON line to this file.
        #[arg(long)]
        audit_log: Option<PathBuf>,
    },
    /// List the synthetic patients (scenario patients first).
    Patients {
        /// A JSON array of {"id", "name", "kana", "insured_number", "age", "sex", "scenario"}.
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
        Command::Serve {
            listen,
            pki,
            latency_ms,
            error_rate,
            reset_rate,
            stall,
            audit_log,
        } => {
            let options = ServeOptions {
                listen,
                pki_dir: pki,
                faults: Faults {
                    latency_ms,
                    stall,
                    reset_rate,
                    error_rate,
                },
                audit_log,
                today: time::OffsetDateTime::now_utc().date(),
            };
            match serve(options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
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
                            "insured_number": p.insured_number,
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

/// Run the server until SIGINT or SIGTERM. The first stdout line is the URL.
fn serve(options: ServeOptions) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let server = SimServer::start(options).await?;
        let mut out = std::io::stdout();
        writeln!(out, "listening on https://{}", server.local_addr)?;
        out.flush()?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping");
        server.shutdown().await;
        Ok(())
    })
}
