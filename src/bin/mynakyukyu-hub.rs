//! The hand-off hub: `serve` runs both faces (tablets over mutual TLS, the hospitals' inbox
//! over HTTPS); the other subcommands administer it.

use clap::{Parser, Subcommand};
use mynakyukyu::cli::LogFormat;
use mynakyukyu::hub::{Hub, HubOptions, admin, seal::SealKey, store::HubStore};
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "mynakyukyu-hub",
    version,
    about = "Hand-off hub: 受入照会 to several hospitals, the pre-arrival packet to the one that accepts"
)]
struct Cli {
    /// Where the hub keeps its database.
    #[arg(long, env = "MYNAKYUKYU_HUB_DATA", global = true)]
    data_dir: Option<PathBuf>,
    /// The master key that seals every case (created on first use). Keep it off the data
    /// dir's volume: a systemd credential named `seal-key` is used when present.
    #[arg(long, env = "MYNAKYUKYU_HUB_SEAL_KEY", global = true)]
    seal_key: Option<PathBuf>,
    /// `postgres://…` to share one database between hubs (every hub on it needs the same
    /// master key); without it, SQLite in the data dir.
    #[arg(long, env = "MYNAKYUKYU_HUB_DATABASE", global = true)]
    database: Option<String>,
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the tablet API and the inbox page. Without `--tls-dir` a development PKI is
    /// made (and its CA trusted) in the hub's configuration directory.
    Serve {
        #[arg(long, default_value = "127.0.0.1:9443")]
        tablet_listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:9444")]
        inbox_listen: SocketAddr,
        /// `server.pem` and `server.key` for both faces.
        #[arg(long)]
        tls_dir: Option<PathBuf>,
        /// Packets are destroyed this many hours after 到着.
        #[arg(long, default_value_t = 24.0)]
        retention_hours: f64,
        /// A case that never arrives is destroyed this many hours after its request.
        #[arg(long, default_value_t = 12.0)]
        stale_hours: f64,
        /// Seconds between retention sweeps.
        #[arg(long, default_value_t = 60)]
        sweep_seconds: u64,
        /// Add the training hospitals and their staff (password and TOTP secret printed).
        #[arg(long)]
        training: bool,
    },
    /// Add (or rename) a hospital.
    AddHospital {
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        #[arg(long = "department")]
        departments: Vec<String>,
    },
    /// Add a staff member; the password is read from standard input, the TOTP secret is
    /// printed once (QR code and otpauth URI).
    AddStaff {
        #[arg(long)]
        hospital: String,
        #[arg(long)]
        login: String,
        #[arg(long)]
        name: String,
    },
    /// Trust a fire-department CA: its units' certificates may use the tablet API (takes
    /// effect at the next `serve`).
    TrustCa { file: PathBuf },
    /// Hospitals, staff, CAs, open cases, counted cases.
    Status,
}

fn config_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("mynakyukyu-hub");
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".config/mynakyukyu-hub"))
        .unwrap_or_else(|| PathBuf::from("mynakyukyu-hub-config"))
}

fn data_dir(cli: &Cli) -> PathBuf {
    if let Some(d) = &cli.data_dir {
        return d.clone();
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("mynakyukyu-hub");
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".local/share/mynakyukyu-hub"))
        .unwrap_or_else(|| PathBuf::from("mynakyukyu-hub-data"))
}

fn seal_key(cli: &Cli) -> PathBuf {
    if let Some(k) = &cli.seal_key {
        return k.clone();
    }
    if let Some(c) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let p = PathBuf::from(c).join("seal-key");
        if p.is_file() {
            return p;
        }
    }
    config_dir().join("seal.key")
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    mynakyukyu::cli::no_core_dumps();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(70);
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn open_store(cli: &Cli) -> Result<HubStore, String> {
    match &cli.database {
        Some(url) => HubStore::open_url(url).await,
        None => HubStore::open(&data_dir(cli)).await,
    }
    .map_err(|e| e.to_string())
}

/// A development PKI in `dir` (made when missing), its CA trusted when no CA is.
async fn dev_tls(dir: &Path, store: &HubStore) -> Result<(), String> {
    mynakyukyu::pki::dev::ensure(dir).map_err(|e| e.to_string())?;
    if store
        .trusted_cas()
        .await
        .map_err(|e| e.to_string())?
        .is_empty()
    {
        let pem = std::fs::read_to_string(dir.join("ca.pem")).map_err(|e| e.to_string())?;
        admin::trust_ca(store, &pem)
            .await
            .map_err(|e| e.to_string())?;
    }
    tracing::warn!(dir = %dir.display(), "serving with a development PKI: not for a real prefecture");
    Ok(())
}

async fn run(cli: &Cli) -> Result<(), String> {
    match &cli.command {
        Command::Serve {
            tablet_listen,
            inbox_listen,
            tls_dir,
            retention_hours,
            stale_hours,
            sweep_seconds,
            training,
        } => {
            let data = data_dir(cli);
            let tls = match tls_dir {
                Some(d) => d.clone(),
                None => {
                    let d = config_dir().join("pki");
                    let store = open_store(cli).await?;
                    dev_tls(&d, &store).await?;
                    store.close().await;
                    d
                }
            };
            if *training {
                let store = open_store(cli).await?;
                let master = SealKey::load_or_create(&seal_key(cli)).map_err(|e| e.to_string())?;
                for line in admin::seed_training(&store, &master)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    println!("{line}");
                }
                store.close().await;
            }
            let hours = |h: f64| Duration::from_secs_f64((h * 3600.0).max(0.0));
            let mut options = HubOptions::loopback(data, seal_key(cli), tls);
            options.tablet_listen = *tablet_listen;
            options.inbox_listen = *inbox_listen;
            options.retention = hours(*retention_hours);
            options.stale_after = hours(*stale_hours);
            options.sweep_every = Duration::from_secs((*sweep_seconds).max(1));
            options.database = cli.database.clone();
            let hub = Hub::start(options).await.map_err(|e| e.to_string())?;
            println!("tablet https://{}", hub.tablet_addr);
            println!("inbox https://{}", hub.inbox_addr);
            let _ = std::io::stdout().flush();
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .map_err(|e| e.to_string())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            hub.shutdown().await;
            Ok(())
        }
        Command::AddHospital {
            code,
            name,
            departments,
        } => {
            let store = open_store(cli).await?;
            admin::add_hospital(&store, code, name, departments)
                .await
                .map_err(|e| e.to_string())?;
            println!("hospital {code} saved");
            store.close().await;
            Ok(())
        }
        Command::AddStaff {
            hospital,
            login,
            name,
        } => {
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .map_err(|e| format!("reading the password from standard input: {e}"))?;
            let password = password.trim_end_matches(['\r', '\n']);
            let store = open_store(cli).await?;
            let master = SealKey::load_or_create(&seal_key(cli)).map_err(|e| e.to_string())?;
            let e = admin::add_staff(&store, &master, hospital, login, name, password)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(qr) = &e.qr {
                println!("{qr}");
            }
            println!("otpauth URI: {}", e.uri);
            println!(
                "TOTP secret (type it in if the QR code cannot be scanned): {}",
                e.secret_base32
            );
            println!("staff {login} added to {hospital}; this secret is not shown again");
            store.close().await;
            Ok(())
        }
        Command::TrustCa { file } => {
            let pem =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let store = open_store(cli).await?;
            for n in admin::trust_ca(&store, &pem)
                .await
                .map_err(|e| e.to_string())?
            {
                println!("trusted: {n}");
            }
            store.close().await;
            Ok(())
        }
        Command::Status => {
            let store = open_store(cli).await?;
            print!(
                "{}",
                admin::status(&store).await.map_err(|e| e.to_string())?
            );
            store.close().await;
            Ok(())
        }
    }
}
