//! What every binary shares: the data directory, the log format, and logging set-up.
//!
//! Logs go to stderr. Sensitive values are redacted by their own `Debug`/`Display`
//! (see [`crate::domain::Sensitive`]), so a log line cannot carry patient data by accident.
//!
//! What is inside: `--data-dir`, `--log-format`, logging set-up shared by the binaries; the
//! data dir of the Debian package from `/etc/mynakyukyu/mynakyukyu.conf`; `prepare_process`
//! (umask 077, and `TPM2_PKCS11_STORE` set by re-executing, since the crate forbids
//! `unsafe` and so `set_var`)

use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    #[default]
    Pretty,
}

/// The Debian package's settings, in systemd's `EnvironmentFile=` syntax: its units read
/// them, and the binaries take their data dir from it.
pub const SYSTEM_CONFIG: &str = "/etc/mynakyukyu/mynakyukyu.conf";

/// `MYNAKYUKYU_DATA=<path>` from an `EnvironmentFile=` text (comments and other keys
/// skipped; an empty or relative value is none).
fn system_data_dir(conf: &str) -> Option<PathBuf> {
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("MYNAKYUKYU_DATA="))
        .map(|v| PathBuf::from(v.trim().trim_matches('"')))
        .rfind(|p| p.is_absolute())
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
    /// The data directory: the option (or `MYNAKYUKYU_DATA`), else the installed
    /// package's (`MYNAKYUKYU_DATA=` in [`SYSTEM_CONFIG`], so that an admin on a tablet
    /// types no path), else `$XDG_DATA_HOME/mynakyukyu`, else `~/.local/share/mynakyukyu`,
    /// else `./mynakyukyu-data`.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        if let Some(dir) = std::fs::read_to_string(SYSTEM_CONFIG)
            .ok()
            .and_then(|conf| system_data_dir(&conf))
        {
            return dir;
        }
        if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(xdg).join("mynakyukyu");
        }
        if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(home).join(".local/share/mynakyukyu");
        }
        PathBuf::from("mynakyukyu-data")
    }

    /// Call first in `main`: new files are created 0600 and directories 0700 (umask 077;
    /// sled makes files as it goes), and tpm2-pkcs11 keeps its token store in `<data>/tpm`.
    ///
    /// tpm2-pkcs11 reads the store from `TPM2_PKCS11_STORE` only. Setting a variable in
    /// a running process is `unsafe` (another thread's C code may read the environment),
    /// and the crate denies `unsafe`, so a process started without it replaces itself
    /// with the same program and arguments and the variable set (one `exec`, before any
    /// thread, file or socket exists). The systemd units set it, so a tablet never
    /// re-executes.
    ///
    /// And no core dump, ever: a core written during a viewing would hold names, drugs and
    /// the unwrapped store key in a file that neither the end of viewing nor `wipe` reaches.
    /// The core-file limit goes to 0 (soft and hard, so nothing in the process raises it)
    /// and the process is made non-dumpable (no core through a collector either, and no
    /// ptrace by the same user). Both are set again after the `exec` below, which resets
    /// the dumpable flag.
    pub fn prepare_process(&self) {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        no_core_dumps();
        if std::env::var_os("TPM2_PKCS11_STORE").is_some() {
            return;
        }
        use std::os::unix::process::CommandExt;
        let store = self.data_dir().join(crate::keys::TPM_DIR);
        let mut args = std::env::args_os();
        let argv0 = args.next().unwrap_or_default();
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(&argv0));
        let failed = std::process::Command::new(exe)
            .arg0(&argv0)
            .args(args)
            .env("TPM2_PKCS11_STORE", store)
            .exec();
        eprintln!("error: could not restart with TPM2_PKCS11_STORE set: {failed}");
        std::process::exit(70);
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

/// The core-file limit to 0 and the process non-dumpable (see `prepare_process`). A
/// failure is logged to stderr and the process goes on: the unit also sets LimitCORE=0.
pub fn no_core_dumps() {
    use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = setrlimit(Resource::Core, none) {
        eprintln!("warning: cannot set the core-file limit to 0: {e}");
    }
    if let Err(e) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        eprintln!("warning: cannot make the process non-dumpable: {e}");
    }
}

/// Keep this process's memory out of swap: the unwrapped store and day keys, the crew's
/// and the patient's PINs and the clinical data of a viewing live in the heap, and a swap
/// partition is a file on the disk a thief takes. `mlockall` with `MCL_ONFAULT` locks pages
/// as they are touched; it is asked for only when the memory-lock limit allows it (the
/// kiosk unit sets `LimitMEMLOCK=infinity`): under a small limit, locking future mappings
/// would make allocations fail. Returns whether memory is locked.
pub fn lock_memory() -> bool {
    use rustix::mm::{MlockAllFlags, mlockall};
    use rustix::process::{Resource, getrlimit};
    let limit = getrlimit(Resource::Memlock);
    let roomy = limit.current.is_none_or(|c| c >= 1 << 30);
    let privileged = rustix::process::geteuid().is_root();
    if !roomy && !privileged {
        tracing::warn!(
            limit = ?limit.current,
            "memory not locked against swap: the memory-lock limit is too small (the kiosk unit sets LimitMEMLOCK=infinity)"
        );
        return false;
    }
    match mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "memory not locked against swap");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_config_names_the_data_dir() {
        let conf = "# the tablet's state\nRUST_LOG=info\nMYNAKYUKYU_DATA=/var/lib/mynakyukyu\n";
        assert_eq!(
            system_data_dir(conf),
            Some(PathBuf::from("/var/lib/mynakyukyu"))
        );
        assert_eq!(
            system_data_dir("MYNAKYUKYU_DATA=\"/srv/m\"\n"),
            Some(PathBuf::from("/srv/m"))
        );
        assert_eq!(system_data_dir("MYNAKYUKYU_DATA=relative\n"), None);
        assert_eq!(system_data_dir("#MYNAKYUKYU_DATA=/x\n"), None);
        assert_eq!(system_data_dir(""), None);
    }
}
