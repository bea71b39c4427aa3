//! A real TPM 2.0 for the tests: Debian's swtpm (the TPM simulator that QEMU uses) behind
//! tpm2-abrmd, its resource manager, on a private D-Bus session bus. A tablet's kernel does
//! the resource manager's job through /dev/tpmrm0; swtpm alone keeps only three objects
//! loaded. Each daemon is started here and stopped by its PID when the value is dropped.

use super::TempDir;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SoftTpm {
    pub dir: TempDir,
    children: Vec<Child>,
    pub bus: String,
    /// The TCTI string for tpm2-pkcs11 (`TPM2_PKCS11_TCTI`) and tpm2-tools (`-T`).
    pub tcti: String,
}

/// The PKCS#11 module the app loads.
pub const MODULE: &str = "/usr/lib/x86_64-linux-gnu/libtpm2_pkcs11.so.1";

/// Two adjacent free ports below Linux's ephemeral range (32768–60999), so that no outgoing
/// connection of a test running beside this one is given either of them between this check
/// and swtpm's bind (a port from `bind(":0")` is an ephemeral one, and CI met that race).
fn free_port_pair() -> u16 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut seed = (std::process::id() as u64) << 32 ^ now.as_nanos() as u64 | 1;
    for _ in 0..200 {
        // a small xorshift: any spread over the range will do
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let p = 20000 + (seed % 12000) as u16;
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(p) && free(p + 1) {
            return p;
        }
    }
    panic!("no free port pair for swtpm");
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(15);
    while !ready() {
        assert!(Instant::now() < until, "{what} did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start swtpm on a free port pair and wait until it answers. The pair is free when chosen
/// but not reserved: should another process take a port first, swtpm exits at once with
/// "Could not open TCP socket: Address already in use", which is a cue to try another pair.
fn start_swtpm(state: &Path, dir: &Path, children: &mut Vec<Child>) -> u16 {
    let mut said = String::new();
    for attempt in 0..5 {
        let port = free_port_pair();
        let log = dir.join(format!("swtpm-{attempt}.log"));
        let mut child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .args([
                "--server",
                &format!("type=tcp,port={port},bindaddr=127.0.0.1"),
            ])
            .args([
                "--ctrl",
                &format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1),
            ])
            .args(["--flags", "not-need-init,startup-clear"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("swtpm (apt-get install swtpm)");
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                children.push(child);
                return port;
            }
            if let Ok(Some(status)) = child.try_wait() {
                said = format!(
                    "swtpm on ports {port}/{} exited ({status}): {}",
                    port + 1,
                    std::fs::read_to_string(&log).unwrap_or_default().trim()
                );
                eprintln!("{said}; trying another port pair");
                break;
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                panic!("swtpm did not come up on port {port} in 15 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("swtpm did not come up in 5 tries; last: {said}");
}

impl SoftTpm {
    pub fn start(tag: &str) -> SoftTpm {
        let dir = TempDir::new(&format!("tpm-{tag}"));
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let mut children = vec![];
        let port = start_swtpm(&state, dir.path(), &mut children);
        let socket = dir.path().join("bus");
        let bus = format!("unix:path={}", socket.display());
        children.push(
            Command::new("dbus-daemon")
                .args(["--session", "--nofork", "--nopidfile"])
                .arg(format!("--address={bus}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dbus-daemon"),
        );
        wait_for("dbus-daemon", || socket.exists());
        let name = format!("com.intel.tss2.Tabrmd.t{}x{}", std::process::id(), port);
        children.push(
            Command::new("tpm2-abrmd")
                .args(["--session", "--allow-root"])
                .arg(format!("--tcti=swtpm:host=127.0.0.1,port={port}"))
                .arg(format!("--dbus-name={name}"))
                .env("DBUS_SESSION_BUS_ADDRESS", &bus)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("tpm2-abrmd"),
        );
        let tcti = format!("tabrmd:bus_type=session,bus_name={name}");
        let tpm = SoftTpm {
            dir,
            children,
            bus,
            tcti,
        };
        wait_for("tpm2-abrmd", || {
            let mut c = Command::new("tpm2_getcap");
            c.args(["-T", &tpm.tcti, "properties-fixed"]);
            tpm.env(&mut c);
            c.stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        // as a tablet's firmware does before it starts the OS: the platform hierarchy is
        // closed, so TPM2_Clear needs the lockout authorisation (the admin's)
        let o = tpm.tool("tpm2_hierarchycontrol", &["-C", "p", "phEnable", "clear"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::create_dir_all(tpm.system_dir()).unwrap();
        tpm
    }

    /// The root-owned system dir of this test tablet (`/etc/mynakyukyu` on a real one):
    /// where `init` keeps the TPM's hierarchy authorisation.
    pub fn system_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// A tpm2-tools command on this TPM, as anyone who can reach the TPM device could run
    /// it (the kiosk user is in group tss).
    pub fn tool(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let mut c = Command::new(tool);
        self.env(&mut c).args(["-T", &self.tcti]).args(args);
        c.output()
            .unwrap_or_else(|e| panic!("{tool} (tpm2-tools): {e}"))
    }

    /// The token's secret as the kiosk user gets it in the boot state the tablet was
    /// enrolled in: the TPM unseals it (tpm2-tools, not our code).
    pub fn unseal_token_secret(&self, data: &Path) -> Result<String, String> {
        let t = data.join("tpm");
        let pcrs = std::fs::read_to_string(t.join("token.pcrs")).map_err(|e| e.to_string())?;
        let ctx = self.dir.path().join("sealed.ctx");
        let load = self.tool(
            "tpm2_load",
            &[
                "-C",
                "0x81000001",
                "-u",
                t.join("token.pin.pub").to_str().unwrap(),
                "-r",
                t.join("token.pin.priv").to_str().unwrap(),
                "-c",
                ctx.to_str().unwrap(),
            ],
        );
        if !load.status.success() {
            return Err(String::from_utf8_lossy(&load.stderr).into_owned());
        }
        let o = self.tool(
            "tpm2_unseal",
            &[
                "-c",
                ctx.to_str().unwrap(),
                "-p",
                &format!("pcr:{}", pcrs.trim()),
            ],
        );
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    }

    /// Another boot state: extend PCR 7 (Secure Boot policy), as a boot from another
    /// medium or a changed Secure Boot database would leave it.
    pub fn boot_something_else(&self) {
        let o = self.tool(
            "tpm2_pcrextend",
            &["7:sha256=6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// Point a command at this TPM.
    pub fn env<'a>(&self, c: &'a mut Command) -> &'a mut Command {
        c.env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .env("MYNAKYUKYU_SYSTEM_DIR", self.system_dir())
            .env("TPM2_PKCS11_TCTI", &self.tcti)
            .env("TPM2_PKCS11_LOG_LEVEL", "0")
            .env("TSS2_LOG", "all+none")
            .env_remove("TPM2_PKCS11_STORE")
    }

    /// OpenSC's pkcs11-tool on the tablet's token (an independent PKCS#11 client).
    pub fn pkcs11_tool(&self, data: &Path, args: &[&str]) -> std::process::Output {
        let pin = self
            .unseal_token_secret(data)
            .expect("the TPM unseals the token secret in the enrolled boot state");
        let mut c = Command::new("pkcs11-tool");
        self.env(&mut c)
            .env("TPM2_PKCS11_STORE", data.join("tpm"))
            .args(["--module", MODULE, "--token-label", "mynakyukyu", "--login"])
            .args(["--pin", pin.trim()])
            .args(args);
        c.output().expect("pkcs11-tool (opensc)")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

impl Drop for SoftTpm {
    fn drop(&mut self) {
        // the resource manager first, then the bus, then the TPM
        for c in self.children.iter_mut().rev() {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_child(c),
                rustix::process::Signal::TERM,
            );
            let until = Instant::now() + Duration::from_secs(3);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
