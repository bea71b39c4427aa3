//! What every binary shares: the data directory, the log format, and logging set-up.
//!
//! Logs go to stderr. Sensitive values are redacted by their own `Debug`/`Display`
//! (see [`crate::domain::Sensitive`]), so a log line cannot carry patient data by accident.

use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    #[default]
    Pretty,
}

/// Options every command takes.
#[derive(Clone, Debug, Args)]
pub struct CommonArgs {
    /// Where this command keeps its state.
    #[arg(long, env = "MYNAKYUKYU_DATA", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
}

impl CommonArgs {
    /// The data directory: the option, else `$XDG_DATA_HOME/mynakyukyu`, else
    /// `~/.local/share/mynakyukyu`, else `./mynakyukyu-data`.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(xdg).join("mynakyukyu");
        }
        if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(home).join(".local/share/mynakyukyu");
        }
        PathBuf::from("mynakyukyu-data")
    }

    /// Call first in `main`, while the process still has one thread: new files are
    /// created 0600 and directories 0700 (umask 077; sled makes files as it goes), and
    /// tpm2-pkcs11 keeps its token store in `<data>/tpm` unless `TPM2_PKCS11_STORE` says
    /// otherwise.
    ///
    /// # Safety
    /// Sets an environment variable: no other thread may exist yet (Rust 2024 makes
    /// `set_var` unsafe because C code in another thread could read the environment).
    pub unsafe fn prepare_process(&self) {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        if std::env::var_os("TPM2_PKCS11_STORE").is_none() {
            let store = self.data_dir().join(crate::keys::TPM_DIR);
            // SAFETY: the caller guarantees the process is single-threaded here.
            unsafe { std::env::set_var("TPM2_PKCS11_STORE", store) };
        }
    }

    /// Install the tracing subscriber (filter from `RUST_LOG`, default `info`).
    pub fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let _ = match self.log_format {
            LogFormat::Json => builder.json().try_init(),
            LogFormat::Pretty => builder.try_init(),
        };
    }
}

/// This process's resident memory and its peak, in KiB, from `/proc/self/status` (for the
/// start-up figure and the benchmarks); `None` where the kernel does not say.
pub fn resident_memory_kib() -> (Option<u64>, Option<u64>) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    (field("VmRSS:"), field("VmHWM:"))
}
