//! The hand-off hub: its binary (`mynakyukyu-hub serve`) on SQLite and on PostgreSQL side by
//! side in one run. Two figures each: a tablet's POST to the row appearing on an inbox page
//! in Debian's chromium (the page's own clock stamps the row, the bench's the POST: one
//! machine, one clock), and one hub holding 1,000 open inbox streams while requests come
//! in (the time from each POST to each stream's event, and the hub's memory). Writes a
//! Markdown fragment for docs/BENCHMARKS.md.
//!
//! Run: `cargo bench --bench hub` (or `scripts/bench hub`).

mod common;

use common::support::{Killed, TempDir, chromium::Chromium, postgres::PgServer};
use mynakyukyu::handoff::HospitalCode;
use mynakyukyu::hub::client::HubClient;
use mynakyukyu::hub::tablet::AskRequest;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const BROWSER_N: usize = 30;
const STREAMS: usize = 1000;
const FANOUT_REQUESTS: usize = 20;

fn hub_cmd(data: &Path, key: &Path, database: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mynakyukyu-hub"));
    c.arg("--data-dir").arg(data).arg("--seal-key").arg(key);
    if let Some(url) = database {
        c.arg("--database").arg(url);
    }
    c.env("RUST_LOG", "warn");
    c
}

struct RunningHub {
    process: Killed,
    tablet_port: u16,
    inbox_port: u16,
    secret: Vec<u8>,
    _dirs: (TempDir, TempDir),
}

fn start_hub(pki: &Path, database: Option<&str>) -> RunningHub {
    let data = TempDir::new("bench-hub");
    let keys = TempDir::new("bench-hub-keys");
    let key = keys.path().join("seal.key");
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut c = hub_cmd(data.path(), &key, database);
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    run(&["trust-ca", pki.join("ca.pem").to_str().unwrap()], None);
    for (code, name) in [("H1", "第一病院"), ("H2", "第二病院"), ("H3", "第三病院")] {
        run(&["add-hospital", "--code", code, "--name", name], None);
    }
    let out = run(
        &[
            "add-staff",
            "--hospital",
            "H1",
            "--login",
            "er1",
            "--name",
            "当直",
        ],
        Some("bench password 1\n"),
    );
    let secret = out
        .lines()
        .find_map(|l| l.split("TOTP secret").nth(1))
        .and_then(|l| l.rsplit(' ').next())
        .map(|b| {
            data_encoding::BASE32_NOPAD
                .decode(b.trim().as_bytes())
                .unwrap()
        })
        .expect("the TOTP secret on stdout");
    let mut child = hub_cmd(data.path(), &key, database)
        .args([
            "serve",
            "--tls-dir",
            pki.to_str().unwrap(),
            "--tablet-listen",
            "127.0.0.1:0",
            "--inbox-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut port = || {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line.trim()
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap()
    };
    let tablet_port = port();
    let inbox_port = port();
    RunningHub {
        process: Killed(child),
        tablet_port,
        inbox_port,
        secret,
        _dirs: (data, keys),
    }
}

impl RunningHub {
    fn status_kib(&self, field: &str) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.process.0.id()))
            .unwrap()
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    }

    fn code(&self) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        format!(
            "{:06}",
            mynakyukyu::hub::totp::code_at(&self.secret, now / mynakyukyu::hub::totp::STEP_S)
        )
    }

    fn tablet(&self, pki: &Path) -> HubClient {
        let identity = mynakyukyu::eligibility::UnitIdentity::from_files(
            &pki.join("unit.pem"),
            &pki.join("unit.key"),
            &pki.join("ca.pem"),
        )
        .unwrap();
        HubClient::new(
            mynakyukyu::eligibility::client::tls_config(identity).unwrap(),
            "localhost",
            self.tablet_port,
        )
    }
}

fn ask() -> AskRequest {
    AskRequest {
        incident_id: "BENCH".into(),
        candidates: vec![HospitalCode("H1".into()), HospitalCode("H2".into())],
        disclosure: mynakyukyu::handoff::Disclosure {
            age_band: Some(mynakyukyu::handoff::AgeBand::of_age(70)),
            modifiers: vec![],
            onset_minutes_ago: None,
            sex: mynakyukyu::domain::Sex::Male,
            complaint: mynakyukyu::handoff::Complaint::ChestPain,
            vitals: Default::default(),
            alerts: vec![],
            eta_minutes: Some(10),
            callback: "090-0000-0000".into(),
        },
    }
}

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1e3
}

/// A TLS client for the inbox that trusts the dev CA.
fn inbox_tls(pki: &Path) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(pki.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(
        mynakyukyu::eligibility::client::crypto_provider(),
    )
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

async fn request(
    tls: &tokio_rustls::TlsConnector,
    port: u16,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<String>,
) -> http::Response<hyper::body::Incoming> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let stream = tls
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("localhost:{port}"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if form.is_some() {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    sender
        .send_request(
            req.body(http_body_util::Full::new(bytes::Bytes::from(
                form.unwrap_or_default(),
            )))
            .unwrap(),
        )
        .await
        .unwrap()
}

async fn sign_in_cookie(hub: &RunningHub, tls: &tokio_rustls::TlsConnector) -> String {
    // a code is good once: after the browser's sign-in, wait for the next step's
    for _ in 0..40 {
        let res = request(
            tls,
            hub.inbox_port,
            "POST",
            "/sign-in",
            None,
            Some(format!(
                "login=er1&password=bench+password+1&code={}",
                hub.code()
            )),
        )
        .await;
        if res.status() == 303 {
            let set = res.headers().get("set-cookie").unwrap().to_str().unwrap();
            return set.split(';').next().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("er1 could not sign in");
}

/// Every stream's delay (ms), and the hub's memory idle, with the streams open, at its
/// peak (MiB).
type Fanout = (Vec<f64>, f64, f64, f64);

/// 1,000 streams open on one hub, `FANOUT_REQUESTS` requests one after another: every
/// stream's delay from the POST to its event, and the hub's memory.
async fn fanout(hub: &RunningHub, pki: &Path) -> Fanout {
    use http_body_util::BodyExt;
    let tls = inbox_tls(pki);
    let cookie = sign_in_cookie(hub, &tls).await;
    let idle_kib = hub.status_kib("VmRSS:");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    for _ in 0..STREAMS {
        let tls = tls.clone();
        let cookie = cookie.clone();
        let tx = tx.clone();
        let ready = ready_tx.clone();
        let port = hub.inbox_port;
        tokio::spawn(async move {
            let res = request(&tls, port, "GET", "/events", Some(&cookie), None).await;
            assert_eq!(res.status(), 200);
            let _ = ready.send(());
            let mut body = res.into_body();
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data()
                    && data.windows(13).any(|w| w == b"data: request")
                {
                    let _ = tx.send(Instant::now());
                }
            }
        });
    }
    for _ in 0..STREAMS {
        ready_rx.recv().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open_kib = hub.status_kib("VmRSS:");
    let tablet = hub.tablet(pki);
    let mut delays = vec![];
    for _ in 0..FANOUT_REQUESTS {
        let t0 = Instant::now();
        tablet.ask(&ask()).await.unwrap();
        for _ in 0..STREAMS {
            let at = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .unwrap()
                .unwrap();
            delays.push(at.duration_since(t0).as_secs_f64() * 1e3);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let peak_kib = hub.status_kib("VmHWM:");
    (
        delays,
        idle_kib / 1024.0,
        open_kib / 1024.0,
        peak_kib / 1024.0,
    )
}

/// A tablet's POST → the row on a signed-in page in chromium, `BROWSER_N` times.
async fn browser(hub: &RunningHub, pki: &Path) -> Option<Vec<f64>> {
    let browser = Chromium::start_for(pki).await?;
    let c = &browser.client;
    browser
        .sign_in(hub.inbox_port, "er1", "bench password 1", &hub.code())
        .await;
    c.execute(
        "window.__seen = {}; new MutationObserver(() => { for (const s of document.querySelectorAll('section[data-case]')) { if (!(s.dataset.case in window.__seen)) window.__seen[s.dataset.case] = performance.timeOrigin + performance.now(); } }).observe(document.getElementById('cases'), {childList: true, subtree: true}); return 0;",
        vec![],
    )
    .await
    .unwrap();
    let tablet = hub.tablet(pki);
    let mut posted = vec![];
    for _ in 0..BROWSER_N {
        let t0 = epoch_ms();
        let id = tablet.ask(&ask()).await.unwrap().case_id;
        posted.push((id, t0));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = c.execute("return window.__seen;", vec![]).await.unwrap();
    let delays = posted
        .iter()
        .filter_map(|(id, t0)| seen.get(id).and_then(|v| v.as_f64()).map(|at| at - t0))
        .collect::<Vec<_>>();
    assert_eq!(delays.len(), BROWSER_N, "every row appeared");
    browser.client.clone().close().await.unwrap();
    Some(delays)
}

fn main() {
    if common::listing() {
        return;
    }
    let rt = common::runtime();
    let pki_dir = TempDir::new("bench-hub-pki");
    mynakyukyu::pki::dev::generate(pki_dir.path()).unwrap();
    let pki = pki_dir.path();
    let pg = PgServer::start().expect("PostgreSQL for the side-by-side run");
    let url = pg.url();
    let mut rows: Vec<(&str, Option<Vec<f64>>, Fanout)> = vec![];
    for (name, db) in [("SQLite", None), ("PostgreSQL", Some(url.as_str()))] {
        eprintln!("bench hub: {name}");
        let hub = start_hub(pki, db);
        let b = rt.block_on(browser(&hub, pki));
        let f = rt.block_on(fanout(&hub, pki));
        rows.push((name, b, f));
        drop(hub);
    }
    let q = |v: &Option<Vec<f64>>, p: f64| {
        v.clone()
            .map(|mut v| common::quantile(&mut v, p))
            .unwrap_or(f64::NAN)
    };
    let (s, p) = (&rows[0], &rows[1]);
    let ratio = |a: f64, b: f64| {
        if a > 0.0 {
            format!("{:.2}", b / a)
        } else {
            "–".into()
        }
    };
    let line = |what: &str, a: f64, b: f64, unit: &str| {
        format!(
            "| {what} | {a:.1} {unit} | {b:.1} {unit} | {} |\n",
            ratio(a, b)
        )
    };
    let mut sf = s.2.0.clone();
    let mut pf = p.2.0.clone();
    let mut md = String::new();
    md.push_str(
        "## The hand-off hub, SQLite and PostgreSQL side by side (`cargo bench --bench hub`)\n\n",
    );
    md.push_str(&format!(
        "The hub's binary (the bench profile's build) on loopback with the dev PKI, once on its embedded SQLite and once on a PostgreSQL server started by the bench (Debian's, same machine), in one run. \
\"POST → row\": a tablet posts a request for two hospitals, {BROWSER_N} times 400 ms apart, while hospital H1's inbox page is open in headless chromium; the page stamps each row the moment it is added (a MutationObserver, `performance.timeOrigin + now()`), the bench stamps the POST before it is sent (same clock). \
\"Push to 1,000 pages\": 1,000 inbox event streams held open on one hub (one signed-in session, TLS each), then {FANOUT_REQUESTS} requests one after another: every stream's delay from the POST to its event (20,000 samples per database; the bench's own process holds the 1,000 client connections on the same 2 cores). Memory is the hub process's (VmRSS, VmHWM).\n\n",
    ));
    md.push_str("| figure | SQLite | PostgreSQL | PostgreSQL/SQLite |\n|---|---|---|---|\n");
    md.push_str(&line(
        "tablet POST → row in chromium, median",
        q(&s.1, 0.5),
        q(&p.1, 0.5),
        "ms",
    ));
    md.push_str(&line(
        "tablet POST → row in chromium, p99",
        q(&s.1, 0.99),
        q(&p.1, 0.99),
        "ms",
    ));
    md.push_str(&line(
        "push to 1,000 open pages, median",
        common::quantile(&mut sf, 0.5),
        common::quantile(&mut pf, 0.5),
        "ms",
    ));
    md.push_str(&line(
        "push to 1,000 open pages, p99",
        common::quantile(&mut sf, 0.99),
        common::quantile(&mut pf, 0.99),
        "ms",
    ));
    md.push_str(&line("hub memory, idle (signed in)", s.2.1, p.2.1, "MiB"));
    md.push_str(&line("hub memory, 1,000 streams open", s.2.2, p.2.2, "MiB"));
    md.push_str(&line("hub memory, peak", s.2.3, p.2.3, "MiB"));
    let path = common::out_dir().join("hub.md");
    std::fs::write(&path, md).unwrap();
    eprintln!("wrote {}", path.display());
    drop(pg);
}
