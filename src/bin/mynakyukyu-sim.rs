//! The eligibility simulator: synthetic patients and, as they land, the mTLS server and the
//! virtual card.

use clap::{Parser, Subcommand};
use mynakyukyu::cli::CommonArgs;
use mynakyukyu::sim::Faults;
use mynakyukyu::sim::PatientRateLimit;
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
        /// Fault: answer each request with the previous answer on its connection.
        #[arg(long)]
        replay_previous: bool,
        /// Fault: two emergency-info inquiries in flight together get each other's body,
        /// every header (the ids too) right.
        #[arg(long)]
        swap_emergency_bodies: bool,
        /// Append every emergency-info inquiry as a JSON line to this file.
        #[arg(long)]
        audit_log: Option<PathBuf>,
        /// Distinct patients one unit may look up per hour before it is flagged, and
        /// before its qualification checks are refused.
        #[arg(long, default_value_t = PatientRateLimit::default().flag_at)]
        flag_patients_per_hour: usize,
        #[arg(long, default_value_t = PatientRateLimit::default().refuse_above)]
        max_patients_per_hour: usize,
    },
    /// A virtual My Number card for a synthetic patient that inserts itself into pcscd's
    /// vpcd reader and answers until removed (or killed).
    Card {
        #[arg(long)]
        patient: String,
        /// The vpcd driver's address (slot 0: 35963, slot 1: 35964).
        #[arg(long, default_value = "127.0.0.1:35963")]
        vpcd: String,
        /// The development PKI directory (its jpki-ca issues the card's certificate).
        #[arg(long)]
        pki: PathBuf,
        /// The card's 4-digit PIN.
        #[arg(long, default_value = "1234")]
        pin: String,
        /// Also write the card's authentication certificate (DER) here.
        #[arg(long)]
        cert_out: Option<PathBuf>,
        /// Fault: vanish after this many APDUs (then exit).
        #[arg(long)]
        remove_after: Option<usize>,
        /// Fault: answer every APDU this many milliseconds late.
        #[arg(long, default_value_t = 0)]
        slow_ms: u64,
        /// Fault: answer garbage.
        #[arg(long)]
        garbage: bool,
        /// Fault: not a My Number card (SELECT of the JPKI AP answers 6A 82).
        #[arg(long)]
        not_jpki: bool,
        /// Hold the credential on a phone instead of the card (スマホ用電子証明書): `android`
        /// needs the smartphone PIN (`--pin`) before the certificate; `ios` is an iPhone
        /// its owner unlocked with Face ID / Touch ID. Phones answer each APDU later.
        #[arg(long, value_enum)]
        phone: Option<PhoneArg>,
        /// With `--phone ios`: the owner has not unlocked it (the reader gets nothing).
        #[arg(long)]
        locked: bool,
    },
    /// List the synthetic patients (scenario patients first).
    Patients {
        /// A JSON array of {"id", "name", "kana", "insured_number", "recipient_number", "age",
        /// "sex", "scenario"}.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = DEFAULT_SEED)]
        seed: u64,
        #[arg(long, default_value_t = DEFAULT_POPULATION)]
        count: usize,
    },
}

/// A phone on the reader.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum PhoneArg {
    Android,
    Ios,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // first thing in main: it may replace the process (see `prepare_process`)
    cli.common.prepare_process();
    cli.common.init_logging();
    match cli.command {
        Command::Serve {
            listen,
            pki,
            latency_ms,
            error_rate,
            reset_rate,
            stall,
            replay_previous,
            swap_emergency_bodies,
            audit_log,
            flag_patients_per_hour,
            max_patients_per_hour,
        } => {
            let options = ServeOptions {
                listen,
                pki_dir: pki,
                faults: Faults {
                    latency_ms,
                    stall,
                    reset_rate,
                    error_rate,
                    replay_previous,
                    swap_emergency_bodies,
                },
                audit_log,
                today: mynakyukyu::domain::Timestamp::now().jst_date(),
            };
            let limit = PatientRateLimit {
                flag_at: flag_patients_per_hour,
                refuse_above: max_patients_per_hour,
            };
            match serve(options, limit) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Card {
            patient,
            vpcd,
            pki,
            pin,
            cert_out,
            remove_after,
            slow_ms,
            garbage,
            not_jpki,
            phone,
            locked,
        } => {
            let faults = mynakyukyu::card::CardFaults {
                remove_after_apdus: remove_after,
                garbage,
                slow_ms,
                not_jpki,
            };
            if locked && !matches!(phone, Some(PhoneArg::Ios)) {
                eprintln!("error: --locked goes with --phone ios");
                return ExitCode::from(2);
            }
            let token = match phone {
                None => mynakyukyu::domain::TokenKind::Card,
                Some(PhoneArg::Android) => mynakyukyu::domain::TokenKind::AndroidPhone,
                Some(PhoneArg::Ios) => mynakyukyu::domain::TokenKind::IPhone,
            };
            match run_card(
                &patient,
                &vpcd,
                &pki,
                &pin,
                cert_out,
                faults,
                (token, !locked),
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Patients { json, seed, count } => {
            let today = mynakyukyu::domain::Timestamp::now().jst_date();
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
                            "recipient_number": p
                                .public_assistance
                                .as_ref()
                                .map(|(_, recipient)| recipient.as_str())
                                .unwrap_or(""),
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
fn serve(options: ServeOptions, limit: PatientRateLimit) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let server = SimServer::start(options).await?;
        server.with_simulator(|s| s.set_rate_limit(limit));
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

/// Issue the patient's card from the PKI's test JPKI CA and keep it in the vpcd reader.
fn run_card(
    patient_id: &str,
    vpcd: &str,
    pki: &std::path::Path,
    pin: &str,
    cert_out: Option<PathBuf>,
    faults: mynakyukyu::card::CardFaults,
    (token, owner_unlocked): (mynakyukyu::domain::TokenKind, bool),
) -> Result<(), Box<dyn std::error::Error>> {
    use mynakyukyu::card::vpcd;
    if pin.len() != 4 || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the PIN must be 4 digits".into());
    }
    let today = mynakyukyu::domain::Timestamp::now().jst_date();
    let (mut card, issued) =
        mynakyukyu::sim::patient_card(pki, patient_id, pin, today).map_err(|e| match e {
            mynakyukyu::sim::SimError::UnknownPatient(_) => {
                format!("no synthetic patient {patient_id} (see `mynakyukyu-sim patients`)")
            }
            e => e.to_string(),
        })?;
    if let Some(path) = cert_out {
        std::fs::write(&path, &issued.auth_certificate_der)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    card.faults = faults;
    let mut card = card.as_phone(token);
    card.owner_unlocked = owner_unlocked;
    println!(
        "{} for {patient_id} inserting into vpcd at {vpcd}",
        token.name()
    );
    std::io::stdout().flush()?;
    loop {
        match vpcd::serve(&mut card, vpcd) {
            Ok(vpcd::Ended::Removed) => {
                println!("card removed");
                return Ok(());
            }
            // pcscd went away or is not up yet: keep trying, as a card left on a reader would
            Ok(vpcd::Ended::ReaderClosed) | Err(_) => {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
    }
}
