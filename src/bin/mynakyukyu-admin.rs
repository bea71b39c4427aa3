//! Fire-department administration: the development/training PKI today; device
//! provisioning (init, install-cert, crew, audit, ipsec-config, wipe) as it lands.

use clap::{Parser, Subcommand};
use mynakyukyu::cli::CommonArgs;
use mynakyukyu::pki::dev;
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

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a development/training PKI: fire-department CA, server certificate, unit
    /// certificates (valid, expired, revoked + CRL), a foreign CA, the test JPKI CA.
    DevPki {
        /// Directory to write into (created if missing; existing files are replaced).
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.common.init_logging();
    match cli.command {
        Command::DevPki { out } => match dev::generate(&out) {
            Ok(()) => {
                println!("development PKI written to {}", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}
