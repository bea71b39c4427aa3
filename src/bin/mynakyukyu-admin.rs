//! Fire-department administration of a tablet: enrolment, the unit certificate, status,
//! the crew roster, the audit trail, the IPsec configuration, crypto-erase, and the
//! development PKI for drills. Errors are English, with the exact reason; exit code 2.

#[path = "mynakyukyu-admin/args.rs"]
mod args;

use args::{AuditCommand, Cli, Command, CrewCommand, DevPkiCommand, Format};
use clap::Parser;
use mynakyukyu::admin::{self, AuditFilter, InitOptions};
use mynakyukyu::config;
use mynakyukyu::pki::dev;
use mynakyukyu::roster::Roster;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

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
        Command::Hub {
            endpoint,
            ca,
            no_tunnel,
            callback,
        } => {
            admin::set_hub(&data, &endpoint, &ca, !no_tunnel, &callback)?;
            println!(
                "hub {endpoint} enrolled ({}); 搬送先照会 is offered from the next start",
                if no_tunnel {
                    "outside the tunnel"
                } else {
                    "through the tunnel"
                }
            );
        }
        Command::Contact { name, phone, hours } => {
            let contact = mynakyukyu::config::DepartmentContact { name, phone, hours };
            let line = contact.line_ja();
            admin::set_contact(&data, contact)?;
            println!("contact set: {line}");
        }
        Command::Leaflet { out } => {
            let cfg = mynakyukyu::config::DeviceConfig::load(&data)?
                .ok_or(admin::AdminError::NotInitialised)?;
            let page = admin::leaflet_html(&cfg)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, page).map_err(|e| admin::AdminError::File {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                    println!("leaflet written: {}", path.display());
                }
                None => print!("{page}"),
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
                    "hub:         {}",
                    s.hub.as_deref().unwrap_or("none (搬送先照会 not offered)")
                );
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
        Command::CheckHub { timeout } => {
            use mynakyukyu::app::device;
            let (cfg, keys) = device::check(&data)?;
            let hub = cfg
                .hub
                .as_ref()
                .ok_or("no hub enrolled (mynakyukyu-admin hub --endpoint … --ca … --callback …)")?;
            let (client, _) = device::hub_client(&data, hub, &keys)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let listed = rt.block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(timeout), client.hospitals())
                    .await
            });
            match listed {
                Ok(Ok(list)) => {
                    println!(
                        "hub ok: {} answered with the unit certificate (key: {}); {} hospitals",
                        hub.endpoint,
                        keys.protection().as_str(),
                        list.hospitals.len()
                    );
                    for h in &list.hospitals {
                        println!("  {}  {}  {}", h.code.0, h.name, h.departments.join("・"));
                    }
                }
                Ok(Err(e)) => return Err(format!("{}: {e}", hub.endpoint).into()),
                Err(_) => return Err(format!("{}: no answer in {timeout} s", hub.endpoint).into()),
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
            command: AuditCommand::Handoffs { format },
        } => {
            let report = admin::handoff_report(&data)?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Format::Csv => print!("{}", admin::handoffs_csv(&report)),
                Format::Bundle => return Err("--format bundle is for `audit export` only".into()),
            }
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
