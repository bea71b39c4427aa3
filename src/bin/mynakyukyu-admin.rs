//! Fire-department administration of a tablet: enrolment, the unit certificate, status,
//! the crew roster, the audit trail, the IPsec configuration, crypto-erase, and the
//! development PKI for drills. Errors are English, with the exact reason; exit code 2.

use clap::{Parser, Subcommand, ValueEnum};
use mynakyukyu::admin::{self, AuditFilter, InitOptions};
use mynakyukyu::cli::CommonArgs;
use mynakyukyu::config;
use mynakyukyu::pki::dev;
use mynakyukyu::roster::Roster;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "mynakyukyu-admin",
    version,
    about = "マイナ救急: device provisioning for fire-department admins"
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Csv,
    Json,
    /// The tablet's whole chain, for `audit merge` (export only).
    Bundle,
}

fn filter<'a>(
    insured_number: &'a Option<String>,
    since: &Option<String>,
    until: &Option<String>,
) -> Result<AuditFilter<'a>> {
    Ok(AuditFilter {
        insured_number: insured_number.as_deref(),
        since: date(since)?,
        until: date(until)?,
    })
}

fn print_rows(rows: &[admin::AuditRow], format: Format) -> Result<()> {
    match format {
        Format::Csv => print!("{}", admin::audit_csv(rows)),
        Format::Json => println!("{}", serde_json::to_string_pretty(rows)?),
        Format::Bundle => return Err("--format bundle is for `audit export` only".into()),
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Enrol this tablet: device key (P-256, 0600), CSR for the unit certificate, store
    /// key, device config.
    Init {
        #[arg(long)]
        unit_id: String,
        #[arg(long)]
        department: String,
        /// https://host:port of the eligibility system.
        #[arg(long)]
        endpoint: String,
        /// The CA the eligibility server's certificate chains to (pinned).
        #[arg(long)]
        server_ca: PathBuf,
        /// The fire-department CA that issues unit certificates (default: --server-ca).
        #[arg(long)]
        unit_ca: Option<PathBuf>,
        #[arg(long)]
        terminal_id: Option<String>,
        /// On a machine without a TPM 2.0, keep the keys in 0600 files (a copy of the
        /// data dir then carries them).
        #[arg(long)]
        allow_file_keys: bool,
        /// The PCRs the TPM seals the token's secret to (the keys open only in this boot
        /// state; a firmware or boot-loader update then needs a re-enrolment).
        #[arg(long, value_name = "SELECTION", default_value = mynakyukyu::keys::tpm_boot::DEFAULT_PCRS)]
        pcrs: String,
        /// Also copy the CSR to DIR/<unit-id>.csr (one directory collects a whole batch).
        #[arg(long, value_name = "DIR")]
        csr_out: Option<PathBuf>,
    },
    /// Install the issued unit certificate (refused unless it matches the device key,
    /// chains to the unit CA, allows clientAuth and is valid now). Given a directory, the
    /// certificate is its <unit-id>.pem.
    InstallCert {
        cert: PathBuf,
        #[arg(long)]
        chain: Option<PathBuf>,
    },
    /// Install the server CA's CRL (PEM): the app refuses a revoked server certificate.
    InstallCrl { crl: PathBuf },
    /// Unit, endpoint, certificate days left, roster size, queue, last sync, tunnel.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Connect to the eligibility system as the tablet does (mutual TLS with the unit
    /// certificate, the key in the TPM) and ask for its health: proves the enrolment end to
    /// end before the tablet goes into service.
    CheckLine {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// The crew roster.
    Crew {
        #[command(subcommand)]
        command: CrewCommand,
    },
    /// The audit trail of viewings.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print a strongSwan swanctl.conf for this device.
    IpsecConfig {
        /// This tablet's IKE address(es).
        #[arg(long, default_value = "%any")]
        local_addrs: String,
        /// The IPsec gateway.
        #[arg(long)]
        remote_addrs: String,
        /// The gateway's identity (e.g. its certificate's DN or address).
        #[arg(long)]
        remote_id: String,
        /// The CA that issued the gateway's certificate (only it is trusted for the gateway).
        #[arg(long)]
        gateway_ca: Option<PathBuf>,
        /// Lay out a complete swanctl directory here (use it as SWANCTL_DIR) instead of
        /// printing swanctl.conf.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Root only: give the TPM's owner and lockout hierarchies a password only root can
    /// read, so nobody else can delete the enrolment record or clear the TPM (`init` run
    /// as root does this itself).
    TpmOwn,
    /// Load the IPsec connection into charon (`swanctl --load-all`), with the secret of
    /// the TPM token the TPM unseals added in memory: no secret on disk (run as root by
    /// mynakyukyu-ipsec.service).
    IpsecLoad {
        /// The swanctl directory `ipsec-config --out` laid out.
        #[arg(long, default_value = "/etc/mynakyukyu/swanctl")]
        swanctl_dir: PathBuf,
        /// More arguments for swanctl (e.g. --uri unix:///run/charon.vici).
        #[arg(last = true)]
        swanctl_args: Vec<String>,
    },
    /// Crypto-erase the device's stored data (asks for confirmation).
    Wipe {
        /// Do not ask (scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Development/training PKI.
    DevPki {
        /// Directory to write into (created if missing; existing files are replaced).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(subcommand)]
        command: Option<DevPkiCommand>,
    },
}

#[derive(Subcommand, Debug)]
enum CrewCommand {
    /// Add a crew member; the PIN is asked twice without echo, or read from stdin.
    Add {
        id: String,
        #[arg(long)]
        name: String,
        /// Sign-in only: this member may not view patients' information.
        #[arg(long)]
        no_view: bool,
    },
    Remove {
        id: String,
    },
    List,
    /// Clear a PIN lock (the third lock in a row, or a missing or broken counter file,
    /// lasts until this).
    Unlock {
        /// The crew id; without it, every id.
        id: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Every record (views, checks, failed lookups, consent decisions and refusals,
    /// corrections, explanations), JST; `--format bundle` writes the whole chain for
    /// `audit merge`.
    Export {
        /// The individual insured number, or for 医療扶助 the 受給者番号.
        #[arg(long)]
        insured_number: Option<String>,
        /// YYYY-MM-DD (JST), inclusive.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Csv)]
        format: Format,
    },
    /// Check the hash chain; name the first broken record.
    Verify,
    /// Combine several tablets' bundles (`audit export --format bundle`) into one answer,
    /// checking each tablet's chain first.
    Merge {
        /// Bundle files, one per tablet.
        #[arg(required = true)]
        bundles: Vec<PathBuf>,
        /// The department's CA that issues unit certificates: each bundle must be signed
        /// by a unit key it certified.
        #[arg(long)]
        unit_ca: PathBuf,
        /// The individual insured number, or for 医療扶助 the 受給者番号.
        #[arg(long)]
        insured_number: Option<String>,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Csv)]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
enum DevPkiCommand {
    /// Sign a unit CSR with the development CA in --dir (drills and tests).
    Sign {
        csr: PathBuf,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 365)]
        days: i64,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // first thing in main: it may replace the process (see `prepare_process`)
    cli.common.prepare_process();
    cli.common.init_logging();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn date(s: &Option<String>) -> Result<Option<time::Date>> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    s.as_deref()
        .map(|d| {
            time::Date::parse(d, fmt)
                .map_err(|e| format!("bad date {d:?} (YYYY-MM-DD): {e}").into())
        })
        .transpose()
}

/// A PIN: twice without echo on a terminal, one line from stdin otherwise.
fn read_pin() -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim().to_string());
    }
    let ask = |prompt: &str| -> Result<String> {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        let _ = std::process::Command::new("stty").arg("-echo").status();
        let mut line = String::new();
        let read = stdin.lock().read_line(&mut line);
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
        read?;
        Ok(line.trim().to_string())
    };
    let first = ask("PIN: ")?;
    if ask("PIN again: ")? != first {
        return Err("the two PINs differ".into());
    }
    Ok(first)
}

fn run(cli: Cli) -> Result<ExitCode> {
    let data = cli.common.data_dir();
    match cli.command {
        Command::Init {
            unit_id,
            department,
            endpoint,
            server_ca,
            unit_ca,
            terminal_id,
            allow_file_keys,
            pcrs,
            csr_out,
        } => {
            let csr = admin::init(
                &data,
                &InitOptions {
                    unit_id: &unit_id,
                    department: &department,
                    endpoint: &endpoint,
                    server_ca: &server_ca,
                    unit_ca: unit_ca.as_deref(),
                    terminal_id: terminal_id.as_deref(),
                    allow_file_keys,
                    pcrs: Some(&pcrs),
                },
            )?;
            let csr = match csr_out {
                Some(dir) => admin::collect_csr(&data, &dir)?,
                None => csr,
            };
            println!(
                "initialised {}; send this CSR to the fire-department CA: {}",
                data.display(),
                csr.display()
            );
            if let Ok(Some(cfg)) = mynakyukyu::config::DeviceConfig::load(&data)
                && admin::tpm_ownership_pending(cfg.key_protection)
            {
                println!(
                    "next, as root: sudo mynakyukyu-admin tpm-own (until then anyone on the tablet could delete its TPM enrolment record)"
                );
            }
        }
        Command::InstallCrl { crl } => {
            let s = admin::install_crl(&data, &crl)?;
            println!(
                "installed server CRL: {} revoked, next update {}",
                s.revoked,
                s.next_update.as_deref().unwrap_or("not given")
            );
            if s.stale {
                eprintln!("warning: this CRL is past its next update; get a newer one");
            }
        }
        Command::InstallCert { cert, chain } => {
            let cert = if cert.is_dir() {
                admin::certificate_in_batch(&data, &cert)?
            } else {
                cert
            };
            let s = admin::install_cert(&data, &cert, chain.as_deref())?;
            println!(
                "installed unit certificate serial {} ({} days left)",
                s.serial_hex, s.days_left
            );
        }
        Command::Status { json } => {
            let s = admin::status(&data)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!(
                    "unit:        {} ({}), terminal {}",
                    s.unit_id, s.department, s.terminal_id
                );
                println!("endpoint:    {}", s.endpoint);
                match (&s.certificate_serial, s.certificate_days_left) {
                    (Some(serial), Some(days)) => println!(
                        "certificate: serial {serial}, {days} days left [{}]",
                        s.certificate_level
                    ),
                    _ => println!("certificate: none installed [error]"),
                }
                println!("roster:      {} crew", s.roster_size);
                println!(
                    "queued:      {} records; last sync {}",
                    s.queued_records,
                    s.last_sync.as_deref().unwrap_or("never")
                );
                println!("tunnel:      {} (required: {})", s.tunnel, s.require_tunnel);
                println!("keys:        {}", s.key_protection);
                println!("integrity:   {}", s.integrity);
                println!(
                    "oldest:      {} (retention {} days; next purge {})",
                    s.oldest_record.as_deref().unwrap_or("no records"),
                    s.retention_days,
                    s.next_purge.as_deref().unwrap_or("after upload")
                );
                for w in &s.warnings {
                    println!("warning:     {w}");
                }
            }
            if s.certificate_level == "error" || s.integrity != "ok" {
                return Ok(ExitCode::from(1));
            }
        }
        Command::CheckLine { timeout } => {
            use mynakyukyu::app::device;
            let (cfg, keys) = device::check(&data)?;
            let endpoint = mynakyukyu::eligibility::Endpoint::parse(&cfg.endpoint)?;
            let client = device::client(&data, &endpoint, &keys, Default::default(), None)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let started = std::time::Instant::now();
            let health = rt.block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(timeout), client.health()).await
            });
            match health {
                Ok(Ok(h)) => println!(
                    "line ok: {} answered in {} ms over TLS 1.3 with the unit certificate (key: {}); server: {:?}",
                    cfg.endpoint,
                    started.elapsed().as_millis(),
                    keys.protection().as_str(),
                    h
                ),
                Ok(Err(e)) => return Err(format!("{}: {e}", cfg.endpoint).into()),
                Err(_) => return Err(format!("{}: no answer in {timeout} s", cfg.endpoint).into()),
            }
        }
        Command::Crew { command } => {
            let path = data.join(config::ROSTER_FILE);
            let mut roster = Roster::load(&path)?;
            // an enrolled tablet's roster is covered by the signed manifest: check it
            // before the change, sign it again after
            let keys = mynakyukyu::keys::DeviceKeys::open(&data).ok();
            let changes = matches!(
                command,
                CrewCommand::Add { .. } | CrewCommand::Remove { .. }
            );
            if let Some(k) = keys.as_ref().filter(|_| changes) {
                k.verify_files(config::PROTECTED_FILES)?;
            }
            match command {
                CrewCommand::Add { id, name, no_view } => {
                    let key = config::open_roster_key(&data)?;
                    let pin = read_pin()?;
                    roster.add(&id, &name, &pin, !no_view, &key)?;
                    roster.save(&path, &key)?;
                    println!("added {id}");
                }
                CrewCommand::Remove { id } => {
                    roster.remove(&id)?;
                    roster.save(&path, &config::open_roster_key(&data)?)?;
                    println!("removed {id}");
                }
                CrewCommand::Unlock { id } => {
                    mynakyukyu::roster::unlock(
                        &path,
                        id.as_deref(),
                        &config::open_roster_key(&data)?,
                    )?;
                    println!("unlocked {}", id.as_deref().unwrap_or("every crew id"));
                }
                CrewCommand::List => {
                    for m in &roster.crew {
                        println!(
                            "{}\t{}\t{}",
                            m.id,
                            m.name,
                            if m.can_view { "view" } else { "no-view" }
                        );
                    }
                }
            }
            if let Some(k) = keys.as_ref().filter(|_| changes) {
                k.seal_files(config::PROTECTED_FILES)?;
            }
        }
        Command::Audit {
            command:
                AuditCommand::Export {
                    insured_number,
                    since,
                    until,
                    format,
                },
        } => {
            if format == Format::Bundle {
                let bundle = admin::audit_bundle(&data)?;
                println!("{}", serde_json::to_string_pretty(&bundle)?);
                return Ok(ExitCode::SUCCESS);
            }
            let rows = admin::audit_export(&data, &filter(&insured_number, &since, &until)?)?;
            print_rows(&rows, format)?;
        }
        Command::Audit {
            command:
                AuditCommand::Merge {
                    bundles,
                    unit_ca,
                    insured_number,
                    since,
                    until,
                    format,
                },
        } => {
            let rows = admin::audit_merge(
                &bundles,
                &unit_ca,
                &filter(&insured_number, &since, &until)?,
            )?;
            print_rows(&rows, format)?;
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let report = admin::audit_verify(&data)?;
            match report.first_broken {
                None => println!("audit chain intact: {} records", report.checked),
                Some(broken) => {
                    println!(
                        "audit chain BROKEN at record seq {} ({}): {}",
                        broken.seq,
                        broken.record_id.as_deref().unwrap_or("unreadable"),
                        broken.reason
                    );
                    return Ok(ExitCode::from(1));
                }
            }
        }
        Command::IpsecConfig {
            local_addrs,
            remote_addrs,
            remote_id,
            gateway_ca,
            out,
        } => {
            let o = admin::IpsecOptions {
                local_addrs: &local_addrs,
                remote_addrs: &remote_addrs,
                remote_id: &remote_id,
                gateway_ca: gateway_ca.as_deref(),
            };
            match out {
                Some(dir) => {
                    admin::write_ipsec_dir(&data, &o, &dir)?;
                    println!("wrote {}", dir.join("swanctl.conf").display());
                }
                None => print!("{}", admin::ipsec_config(&data, &o)?),
            }
        }
        Command::TpmOwn => {
            admin::tpm_own()?;
            println!(
                "the TPM's owner and lockout hierarchies now need {}",
                mynakyukyu::keys::tpm_boot::system_dir()
                    .join(mynakyukyu::keys::tpm_boot::HIERARCHY_AUTH_FILE)
                    .display()
            );
        }
        Command::IpsecLoad {
            swanctl_dir,
            swanctl_args,
        } => {
            print!("{}", admin::load_ipsec(&data, &swanctl_dir, &swanctl_args)?);
        }
        Command::Wipe { yes } => {
            if !yes {
                eprint!("This destroys every record on this tablet. Type WIPE to go on: ");
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                if line.trim() != "WIPE" {
                    eprintln!("not wiped");
                    return Ok(ExitCode::from(1));
                }
            }
            let report = admin::wipe(&data)?;
            for d in &report.destroyed {
                println!("destroyed: {d}");
            }
            for p in &report.problems {
                eprintln!("problem: {p}");
            }
            println!("wiped {}", data.display());
            println!("still to do:");
            for t in &report.still_to_do {
                println!("  - {t}");
            }
            if !report.problems.is_empty() {
                return Ok(ExitCode::from(2));
            }
        }
        Command::DevPki {
            command:
                Some(DevPkiCommand::Sign {
                    csr,
                    dir,
                    days,
                    out,
                }),
            ..
        } => {
            let pem = admin::dev_sign_csr(&dir, &csr, days)?;
            match out {
                Some(p) => std::fs::write(&p, pem).map_err(|e| format!("{}: {e}", p.display()))?,
                None => print!("{pem}"),
            }
        }
        Command::DevPki {
            out: Some(out),
            command: None,
        } => {
            dev::generate(&out)?;
            println!("development PKI written to {}", out.display());
        }
        Command::DevPki {
            out: None,
            command: None,
        } => {
            return Err("dev-pki needs --out DIR (or the `sign` subcommand)".into());
        }
    }
    Ok(ExitCode::SUCCESS)
}
