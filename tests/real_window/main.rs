//! The real app in a real window under Xvfb, tapped by screen coordinates with xdotool as a
//! gloved hand taps: no accessible labels, no hooks into the process. Where to tap comes
//! from the same .slint screens laid out by Slint's testing backend at the window's size,
//! in this test process; what was recorded is read afterwards with `mynakyukyu-admin audit
//! export`, as an admin would. Screenshots of every step are kept under the target dir
//! (`real-window/`), not committed.
//!
//! Xvfb, xdotool and ImageMagick's `import` are installed by scripts/setup; the test
//! starts Xvfb and the app itself and stops them by PID.

#[path = "../common/mod.rs"]
mod common;

mod crash;
mod handoff;
mod refusals;
mod taps;

pub use common::{Killed, TempDir};
pub use i_slint_backend_testing::{ElementHandle, ElementQuery};
pub use mynakyukyu::ui::{Api, AppWindow, CrewItem, ScenarioItem, Screen, Status};
pub use slint::{ComponentHandle, ModelRc, VecModel};
pub use std::path::{Path, PathBuf};
pub use std::process::{Child, Command, Stdio};
pub use std::rc::Rc;
pub use std::time::{Duration, Instant};

/// Longer than the tap guard: a person who looked before tapping.
const LOOK: Duration = Duration::from_millis(900);
/// A card read and the qualification check on loopback, with margin for a debug build.
const CARD: Duration = Duration::from_millis(2500);

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed: run scripts/setup");
}

/// The screen, no TCP, and no server reset (see `start_xvfb`).
const XVFB_ARGS: [&str; 6] = [
    "-screen",
    "0",
    "1280x800x24",
    "-nolisten",
    "tcp",
    "-noreset",
];

fn start_xvfb() -> (Killed, String) {
    // tests of one process run in parallel: each takes its own range of display numbers
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = 90
        + std::process::id() % 100
        + 200 * NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let n = (base..base + 100)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .expect("a free display number");
    let display = format!(":{n}");
    // -noreset: by default an X server resets when its last client disconnects, and a
    // client connecting during that reset is refused ("Failed to open connection to X
    // server"). Here that is every xdotool call, so under load the app's own connection
    // could fall into one: 3-16 refusals in 300 xdotool calls on this 2-core machine with
    // the cores busy, none with -noreset (CI failed once on it).
    let child = Command::new(tool("Xvfb"))
        .arg(&display)
        .args(XVFB_ARGS)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb starts");
    let xvfb = Killed(child);
    // up when a client can talk to it (the socket alone can come first)
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answered = Command::new(tool("xdotool"))
            .arg("getmouselocation")
            .env("DISPLAY", &display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if answered {
            break;
        }
        assert!(Instant::now() < deadline, "Xvfb did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    (xvfb, display)
}

struct Screenful {
    display: String,
    window: String,
    shots: PathBuf,
    count: usize,
}

impl Screenful {
    /// The app's window once it is mapped (up to 60 s; `log` is shown if it never is), and
    /// a fresh screenshot dir under the target dir.
    fn of(app: &Killed, display: String, shots: &str, log: &Path) -> (Screenful, PathBuf) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let window = loop {
            let out = Command::new(tool("xdotool"))
                .args(["search", "--pid", &app.0.id().to_string()])
                .env("DISPLAY", &display)
                .output()
                .unwrap();
            if let Some(id) = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()
            {
                break id.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no window ({}); the app said:\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(shots);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let s = Screenful {
            display,
            window,
            shots: dir.clone(),
            count: 0,
        };
        (s, dir)
    }

    fn xdotool(&self, args: &[&str]) -> String {
        let out = Command::new(tool("xdotool"))
            .args(args)
            .env("DISPLAY", &self.display)
            .output()
            .expect("xdotool runs");
        assert!(
            out.status.success(),
            "xdotool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// One tap (or `taps` in quick succession, 120 ms apart) at a point of the window.
    fn tap(&self, (x, y): (i32, i32), taps: u32) {
        self.xdotool(&[
            "mousemove",
            "--window",
            &self.window,
            &x.to_string(),
            &y.to_string(),
        ]);
        self.xdotool(&[
            "click",
            "--repeat",
            &taps.to_string(),
            "--delay",
            "120",
            "1",
        ]);
    }

    fn shot(&mut self, name: &str) {
        self.count += 1;
        let file = self.shots.join(format!("{:02}-{name}.png", self.count));
        let ok = Command::new(tool("import"))
            .args(["-window", "root"])
            .arg(&file)
            .env("DISPLAY", &self.display)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "screenshot {}", file.display());
    }
}

/// Where things are: the screens laid out by the testing backend at 1280×800 in training
/// mode, as the app lays them out.
struct Layout {
    app: AppWindow,
}

impl Layout {
    fn new() -> Layout {
        i_slint_backend_testing::init_no_event_loop();
        let app = AppWindow::new().unwrap();
        app.window()
            .set_size(slint::LogicalSize::new(1280.0, 800.0));
        // the theme takes the window's size, as the app's timer does (ui::follow_window_size)
        mynakyukyu::ui::fit_theme_to_window(&app);
        let api = app.global::<Api>();
        api.set_status(Status {
            training: true,
            ..Default::default()
        });
        api.set_scenarios(ModelRc::from(Rc::new(VecModel::from(
            mynakyukyu::drill::scenario_names()
                .into_iter()
                .map(|n| ScenarioItem {
                    name: n.into(),
                    title: mynakyukyu::drill::scenario(n).unwrap().title.into(),
                })
                .collect::<Vec<_>>(),
        ))));
        Layout { app }
    }

    fn api(&self) -> Api<'_> {
        self.app.global::<Api>()
    }

    fn centre(h: &ElementHandle) -> (i32, i32) {
        let p = h.absolute_position();
        let s = h.size();
        ((p.x + s.width / 2.0) as i32, (p.y + s.height / 2.0) as i32)
    }

    /// The centre of the control with this element id (`Component::id`).
    fn by_id(&self, id: &str) -> (i32, i32) {
        let found: Vec<_> = ElementHandle::find_by_element_id(&self.app, id).collect();
        assert_eq!(found.len(), 1, "{id}");
        Self::centre(&found[0])
    }

    /// The centre of the button labelled so.
    fn by_label(&self, label: &str) -> (i32, i32) {
        let want = label.to_string();
        let found = ElementQuery::from_root(&self.app)
            .match_descendants()
            .match_predicate(move |e| e.accessible_label().is_some_and(|l| l == want.as_str()))
            .find_all();
        assert!(!found.is_empty(), "{label}");
        Self::centre(&found[0])
    }
}

/// The training data dir's export, as an admin reads it.
fn admin_export(data: &Path) -> Vec<serde_json::Value> {
    common::audit_export_json(&data.join("training"))
}

/// The decisions in an audit export (every record but the audit entries), in order.
fn decisions(rows: &[serde_json::Value]) -> Vec<&str> {
    rows.iter()
        .filter(|r| r["record"] != "audit")
        .map(|r| r["action"].as_str().unwrap())
        .collect()
}

/// The decoded pixels of a PNG (screenshots compared without ImageMagick's metadata, such
/// as the timestamp it writes).
fn pixels(bytes: &[u8]) -> Vec<u8> {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    buf
}

/// Where sign-in's controls stand.
struct SignInPlaces {
    crew: (i32, i32),
    zero: (i32, i32),
    sign_in: (i32, i32),
}

impl SignInPlaces {
    fn of(layout: &Layout) -> SignInPlaces {
        layout.api().set_screen(Screen::SignIn);
        // a training roster: the training crew, as the app lists it
        layout
            .api()
            .set_crew_list(ModelRc::from(Rc::new(VecModel::from(vec![CrewItem {
                id: mynakyukyu::drill::world::TRAINING_CREW.into(),
                name: mynakyukyu::drill::world::TRAINING_CREW_NAME.into(),
            }]))));
        SignInPlaces {
            crew: layout.by_label(mynakyukyu::drill::world::TRAINING_CREW_NAME),
            zero: layout.by_label("0"),
            sign_in: layout.by_id("SignInScreen::signin"),
        }
    }
}

/// Where a drill's card is placed from and the consent screen's photo check stands (the
/// layout is left on the consent screen).
struct CardPlaces {
    sign_in: SignInPlaces,
    trainer: (i32, i32),
    place_card: (i32, i32),
    photo: (i32, i32),
}

impl CardPlaces {
    fn of(layout: &Layout) -> CardPlaces {
        let api = layout.api();
        let sign_in = SignInPlaces::of(layout);
        api.set_screen(Screen::Ready);
        let trainer = layout.by_label("訓練操作");
        api.set_trainer_open(true);
        let title = mynakyukyu::drill::scenario("diabetic-verbal")
            .unwrap()
            .title;
        let place_card = layout.by_label(&title);
        api.set_trainer_open(false);
        api.set_screen(Screen::Consent);
        CardPlaces {
            sign_in,
            trainer,
            place_card,
            photo: layout.by_id("ConsentScreen::photo"),
        }
    }
}

/// The app in training mode in a real window under its own Xvfb, signed in by taps.
struct TrainingWindow {
    s: Screenful,
    shots: PathBuf,
    app: Killed,
    _xvfb: Killed,
    d: TempDir,
}

impl TrainingWindow {
    fn start(tag: &str, sign_in: &SignInPlaces) -> TrainingWindow {
        TrainingWindow::start_in(tag, sign_in, None)
    }

    /// As `start`; with `cores`, the app runs in that directory with a core-file limit of
    /// unlimited, as a tablet with core dumps left on would run it.
    fn start_in(tag: &str, sign_in: &SignInPlaces, cores: Option<&Path>) -> TrainingWindow {
        let d = TempDir::new(tag);
        let (xvfb, display) = start_xvfb();
        let log = std::fs::File::create(d.path().join("app.log")).unwrap();
        let mut command = match cores {
            None => Command::new(env!("CARGO_BIN_EXE_mynakyukyu")),
            Some(dir) => {
                let mut c = Command::new("/bin/sh");
                c.args(["-c", "ulimit -c unlimited && exec \"$0\" \"$@\""])
                    .arg(env!("CARGO_BIN_EXE_mynakyukyu"))
                    .current_dir(dir);
                c
            }
        };
        let app = Killed(
            command
                .args(["--training", "--data-dir"])
                .arg(d.path())
                .env("DISPLAY", &display)
                .env("RUST_LOG", "info")
                .env_remove("WAYLAND_DISPLAY")
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let (mut s, shots) = Screenful::of(&app, display, tag, &d.path().join("app.log"));
        std::thread::sleep(Duration::from_secs(2));
        s.shot("sign-in");
        // sign in by touch alone: the crew member's name, then the PIN on the keypad (no
        // key event anywhere: the tablet has no keyboard)
        s.tap(sign_in.crew, 1);
        std::thread::sleep(Duration::from_millis(150));
        for _ in 0..mynakyukyu::drill::world::TRAINING_CREW_PIN.len() {
            s.tap(sign_in.zero, 1);
            std::thread::sleep(Duration::from_millis(150));
        }
        std::thread::sleep(LOOK);
        s.tap(sign_in.sign_in, 1);
        std::thread::sleep(CARD);
        s.shot("ready");
        TrainingWindow {
            s,
            shots,
            app,
            _xvfb: xvfb,
            d,
        }
    }
}
