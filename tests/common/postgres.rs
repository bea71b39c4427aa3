//! A real PostgreSQL server for a test or bench: Debian's postgresql binaries, a cluster in a
//! temp dir (initdb), loopback on a free port, stopped by PID (fast shutdown) when dropped.
//! As root the server runs as the `postgres` user (it refuses root).

use super::TempDir;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgServer {
    child: Child,
    pub dir: TempDir,
    pub port: u16,
}

fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn as_server_user(program: PathBuf) -> Command {
    if rustix::process::getuid().is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PgServer {
    /// None when PostgreSQL is not installed (outside CI; in CI it is a failure).
    pub fn start() -> Option<PgServer> {
        let Some(bin) = bin_dir() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "postgresql is missing (scripts/setup installs it)"
            );
            eprintln!("skipped: no PostgreSQL server binaries");
            return None;
        };
        let dir = TempDir::new("pg");
        let data = dir.path().join("data");
        if rustix::process::getuid().is_root() {
            let o = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .unwrap();
            assert!(o.status.success());
        }
        let o = as_server_user(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "hub",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = as_server_user(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = PgServer { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "hub"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "PostgreSQL did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        let o = Command::new(bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "hub",
                "hub",
            ])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("postgres://hub@127.0.0.1:{}/hub", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The cluster's files (what a thief of the database host takes).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown (SIGTERM would wait for every client)
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
