//! The command line of `mynakyukyu-admin`: every command, its options and their help.

use clap::{Parser, Subcommand, ValueEnum};
use mynakyukyu::cli::CommonArgs;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "mynakyukyu-admin",
    version,
    about = "マイナ救急: device provisioning for fire-department admins"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Csv,
    Json,
    /// The tablet's whole chain, for `audit merge` (export only).
    Bundle,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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
    /// The hand-off hub (受入照会 to several hospitals, the packet to the one that accepts):
    /// its endpoint, its CA, and the unit's call-back number.
    Hub {
        /// `https://host:port` of the hub's tablet face (an address when reached through
        /// the tunnel).
        #[arg(long)]
        endpoint: String,
        /// The CA that issued the hub's certificate (PEM).
        #[arg(long)]
        ca: PathBuf,
        /// The hub is reached outside the tunnel (the department's decision).
        #[arg(long)]
        no_tunnel: bool,
        /// The unit's call-back number, in every request.
        #[arg(long)]
        callback: String,
    },
    /// The department's contact for patients and families (傷病者用説明書の問い合わせ先):
    /// shown with the explanation reminder and printed on the leaflet.
    Contact {
        /// 「○○市消防本部 警防課」.
        #[arg(long)]
        name: String,
        /// 「03-1234-5678」.
        #[arg(long)]
        phone: String,
        /// When it answers, e.g. 「平日 8:30〜17:15」.
        #[arg(long)]
        hours: Option<String>,
    },
    /// Write the explanation leaflet (傷病者用説明書) with the department's contact, as a
    /// printable A4 HTML page.
    Leaflet {
        /// Where to write it (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
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
    /// Connect to the enrolled hand-off hub as the tablet does (mutual TLS with the unit
    /// certificate, the key in the TPM) and list the hospitals it offers this unit.
    CheckHub {
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
pub(crate) enum CrewCommand {
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
pub(crate) enum AuditCommand {
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
    /// Per incident with a hand-off: 照会回数 (hospitals asked), requests, seconds from the
    /// first request to the first 受入可 and to 搬送決定, the hospital chosen.
    Handoffs {
        #[arg(long, value_enum, default_value_t = Format::Csv)]
        format: Format,
    },
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
pub(crate) enum DevPkiCommand {
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
