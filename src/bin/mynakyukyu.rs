//! The tablet app. With no command it runs its main job on the embedded default: training
//! mode against the built-in simulator.

use clap::{Parser, Subcommand};
use mynakyukyu::app::Command as AppCommand;
use mynakyukyu::cli::CommonArgs;
use mynakyukyu::drill;
use mynakyukyu::drill::world::TrainingWorld;
use mynakyukyu::ui::headless::HeadlessWindow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "mynakyukyu",
    version,
    about = "マイナ救急: the ambulance tablet app"
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Force training mode (訓練モード) against the built-in simulator.
    #[arg(long)]
    training: bool,
    /// For the start-up benchmark: quit after the window's first frame, printing
    /// `ready rss_kib=… hwm_kib=…` on stdout.
    #[arg(long, hide = true)]
    exit_when_ready: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Wait for a card, read its user-authentication certificate, print serial, issuer and
    /// validity.
    CardInfo {
        /// Use this reader only (default: the first reader that has a card).
        #[arg(long)]
        reader: Option<String>,
        /// Write the certificate (DER) here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Run one scripted drill end to end and write the debrief.
    Drill {
        /// Scenario name (see --list).
        #[arg(long, required_unless_present = "list")]
        scenario: Option<String>,
        /// Print the scenario names, one per line.
        #[arg(long)]
        list: bool,
        /// Run without a display.
        #[arg(long)]
        headless: bool,
        /// Write the debrief report here (JSON; an HTML page beside it).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Render every screen of the flow (day and night themes) to PNG files in this dir.
        #[arg(long)]
        screenshots: Option<PathBuf>,
        /// The panel the screenshots are rendered for, in pixels (WIDTHxHEIGHT).
        #[arg(long, default_value = "1280x800", value_parser = parse_panel)]
        size: (u32, u32),
        /// The panel's scale factor (as SLINT_SCALE_FACTOR sets it on a tablet).
        #[arg(long, default_value_t = 1.0)]
        scale: f32,
    },
}

/// `1280x800` → (1280, 800): a panel between 640×480 and 7680×4320 pixels.
fn parse_panel(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once(['x', '×'])
        .ok_or_else(|| format!("{text:?} is not WIDTHxHEIGHT (for example 1280x800)"))?;
    let (w, h) = (
        w.trim()
            .parse::<u32>()
            .map_err(|e| format!("width {w:?}: {e}"))?,
        h.trim()
            .parse::<u32>()
            .map_err(|e| format!("height {h:?}: {e}"))?,
    );
    if !(640..=7680).contains(&w) || !(480..=4320).contains(&h) {
        return Err(format!("{w}x{h} is outside 640x480 … 7680x4320"));
    }
    Ok((w, h))
}

/// Where and for which panel `drill --screenshots` renders.
struct Screenshots {
    dir: PathBuf,
    size: (u32, u32),
    scale: f32,
}

/// The drill the app runs when started with no command where there is no display.
const DEFAULT_SCENARIO: &str = "unconscious-warfarin";

fn main() -> ExitCode {
    let cli = Cli::parse();
    // first thing in main: it may replace the process (see `prepare_process`)
    cli.common.prepare_process();
    cli.common.init_logging();
    // keys, PINs and a viewing's clinical data never reach a swap partition
    let locked = mynakyukyu::cli::lock_memory();
    tracing::debug!(locked, "memory locked against swap");
    let result = match cli.command {
        Some(Command::CardInfo {
            reader,
            out,
            timeout,
        }) => card_info(reader.as_deref(), out, timeout),
        Some(Command::Drill { list: true, .. }) => {
            for name in drill::scenario_names() {
                println!("{name}");
            }
            Ok(true)
        }
        Some(Command::Drill {
            scenario,
            report,
            screenshots,
            size,
            scale,
            ..
        }) => run_drill(
            &cli.common,
            scenario.as_deref().unwrap_or(DEFAULT_SCENARIO),
            report,
            screenshots.map(|dir| Screenshots { dir, size, scale }),
        ),
        None => {
            let data = cli.common.data_dir();
            // a device.toml that does not parse is a broken tablet, never training mode
            let provisioned = match mynakyukyu::config::provisioned(&data) {
                Ok(p) => p,
                Err(e) if !cli.training => {
                    let e = mynakyukyu::app::device::DeviceError::from(e);
                    show_stopped(&e);
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
                Err(_) => false,
            };
            // an enrolled tablet whose device files were deleted stops; it never falls
            // back to training mode (only an explicit --training on the unit's line does)
            if !provisioned && !cli.training {
                match mynakyukyu::keys::enrolled_here() {
                    Ok(None) => {}
                    Ok(Some(how)) => {
                        let e = mynakyukyu::app::device::DeviceError::Unenrolled(how);
                        show_stopped(&e);
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                    Err(e) => {
                        let e = mynakyukyu::app::device::DeviceError::from(e);
                        show_stopped(&e);
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            let training = cli.training || !provisioned;
            // without a display a provisioned tablet still checks its data dir, keys and
            // manifest before the headless drill; with one, `run_app` does (device::open),
            // so the TPM is not asked to unseal twice at start
            if !has_display()
                && !training
                && let Err(e) = mynakyukyu::app::device::check(&data)
            {
                show_stopped(&e);
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            if !has_display() {
                tracing::info!(
                    training,
                    "no display: running the default drill headless (`drill --screenshots DIR` renders the screens)"
                );
                run_drill(&cli.common, DEFAULT_SCENARIO, None, None)
            } else {
                tracing::info!(training, "starting the app");
                run_app(&cli.common, training, cli.exit_when_ready)
            }
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

fn runtime() -> Result<tokio::runtime::Runtime, Box<dyn std::error::Error>> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn run_drill(
    common: &CommonArgs,
    name: &str,
    report_path: Option<PathBuf>,
    shots: Option<Screenshots>,
) -> Result<bool, Box<dyn std::error::Error>> {
    let scenario = drill::scenario(name)?;
    if let Some(s) = &shots
        && !(s.scale.is_finite() && (1.0..=3.0).contains(&s.scale))
    {
        return Err(format!("--scale {} is outside 1 … 3", s.scale).into());
    }
    let screenshots = shots.as_ref().map(|s| s.dir.clone());
    let today = mynakyukyu::domain::Timestamp::now().jst_date();
    let training_dir = common.data_dir().join("training");
    let rt = runtime()?;
    let world = rt.block_on(TrainingWorld::start(&training_dir, today))?;
    let window = match &screenshots {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let ((width, height), scale) = shots
                .as_ref()
                .map_or(((1280, 800), 1.0), |s| (s.size, s.scale));
            Some(HeadlessWindow::with_scale(width, height, scale)?)
        }
        None => None,
    };
    let mut shot_errors = vec![];
    let mut observe = |i: usize, step: &str, vm: &mynakyukyu::app::view::ViewModel| {
        let (Some(w), Some(dir)) = (&window, &screenshots) else {
            return;
        };
        for (night, theme) in [(false, "day"), (true, "night")] {
            let path = dir.join(format!(
                "{name}-{i:02}-{step}-{}-{theme}.png",
                vm.screen.name()
            ));
            if let Err(e) = w.screenshot(vm, night, &path) {
                shot_errors.push(e.to_string());
            }
        }
    };
    let report = rt.block_on(drill::run(&scenario, &world, &mut observe))?;
    rt.block_on(world.shutdown());
    for e in &shot_errors {
        eprintln!("screenshot: {e}");
    }
    tracing::info!(
        scenario = name,
        records = report.stored_records,
        "drill finished"
    );
    print!("{}", drill::render_text(&report));
    // every drill leaves its debrief in the training dir; --report copies the JSON
    let reports = training_dir.join("reports");
    std::fs::create_dir_all(&reports)
        .map_err(|e| format!("cannot create {}: {e}", reports.display()))?;
    let stem = format!(
        "{}-{name}",
        report.started_at.replace([':', '-'], "").replace('.', "_")
    );
    let kept = report.redacted();
    let mut targets = vec![(&kept, reports.join(format!("{stem}.json")))];
    if let Some(path) = &report_path {
        targets.push((&report, path.clone()));
    }
    for (r, json_path) in targets {
        let html_path = json_path.with_extension("html");
        std::fs::write(&json_path, serde_json::to_vec_pretty(r)?)
            .map_err(|e| format!("cannot write report {}: {e}", json_path.display()))?;
        std::fs::write(&html_path, drill::render_html(r))
            .map_err(|e| format!("cannot write report {}: {e}", html_path.display()))?;
    }
    if let Some(dir) = &screenshots {
        println!("  screens:  {}", dir.display());
    }
    println!(
        "  debrief:  {}",
        reports.join(format!("{stem}.html")).display()
    );
    Ok(report.passed && shot_errors.is_empty())
}

/// The app with its window: the controller on a tokio worker, Slint on this thread.
fn run_app(
    common: &CommonArgs,
    training: bool,
    exit_when_ready: bool,
) -> Result<bool, Box<dyn std::error::Error>> {
    use mynakyukyu::app::{Controller, line};
    use mynakyukyu::ui::{self, AppWindow};
    use slint::ComponentHandle;
    let rt = runtime()?;
    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::channel(64);
    let (probe_tx, probe_rx) = tokio::sync::watch::channel(None);
    let app = AppWindow::new()?;
    // No size is set here: the window asks for 1280×800 (preferred-width/height in
    // ui/app.slint) and takes what the compositor gives. A size set from here is one Slint
    // holds the window to: under cage, which maximises the window to its output, a
    // 1280×720 panel showed the top 720 rows of an 800-row screen (the keypad cut off).
    // The theme's sizes follow the window (compact on 1280×720 and smaller).
    let _theme_follows_window = ui::follow_window_size(&app);
    // A provisioned tablet asks for full screen. (On Wayland, Slint 1.18 takes the request
    // back before the compositor confirms it; under cage the window is maximised to the
    // panel all the same.)
    if !training {
        app.window().set_fullscreen(true);
    }
    // What must live as long as the window: the training world, or the uploader's stop
    // switch and the card-presence watch (dropping them would stop the uploader at once
    // and cancel the watch).
    let mut _training_world = None;
    let mut _device_parts = None;
    if training {
        let today = mynakyukyu::domain::Timestamp::now().jst_date();
        let world = Arc::new(rt.block_on(TrainingWorld::start(
            &common.data_dir().join("training"),
            today,
        ))?);
        let (controller, views) = Controller::new(world.ports()?, world.settings());
        let probe_client = Arc::new(world.client(TrainingWorld::client_settings())?);
        rt.spawn(line::monitor(
            probe_client,
            Duration::from_secs(2),
            probe_tx,
        ));
        rt.spawn(controller.run(cmd_rx, Some(probe_rx)));
        rt.spawn(ui::forward_views(views, app.as_weak()));
        let trainer = Arc::new(mynakyukyu::ui::TrainingPanel {
            world: world.clone(),
            commands: cmd_tx.clone(),
            runtime: rt.handle().clone(),
        });
        ui::bind(&app, cmd_tx, Some(trainer));
        _training_world = Some(world);
    } else {
        let mut device = match mynakyukyu::app::device::open(&common.data_dir()) {
            Ok(d) => d,
            Err(e) => {
                drop(app);
                show_stopped(&e);
                return Err(e.into());
            }
        };
        write_pid_file(&common.data_dir());
        let uploader = mynakyukyu::sync::Uploader::new(
            device.ports.store.clone(),
            device.background_client.clone(),
            Default::default(),
        );
        device.ports.uploader_wake = Some(uploader.waker());
        let retained_store = device.ports.store.clone();
        let (controller, views) = Controller::new(device.ports, device.settings);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        rt.spawn(mynakyukyu::app::device::enforce_retention(
            retained_store,
            device.config.retention_days,
            mynakyukyu::app::device::RETENTION_EVERY,
            stop_rx.clone(),
        ));
        rt.spawn(uploader.run(stop_rx));
        rt.spawn(line::monitor(
            device.background_client,
            Duration::from_secs(5),
            probe_tx,
        ));
        let mut presence = device.presence;
        let tx = cmd_tx.clone();
        rt.spawn(async move {
            while let Some(placed) = presence.recv().await {
                let c = if placed {
                    AppCommand::CardPlaced
                } else {
                    AppCommand::CardRemoved
                };
                if tx.send(c).await.is_err() {
                    return;
                }
            }
        });
        rt.spawn(controller.run(cmd_rx, Some(probe_rx)));
        rt.spawn(ui::forward_views(views, app.as_weak()));
        ui::bind(&app, cmd_tx, None);
        _device_parts = Some((stop_tx, device.watch));
    }
    if exit_when_ready {
        quit_after_first_frame(&app)?;
    }
    app.run()?;
    if let Some((stop, _watch)) = &_device_parts {
        stop.send_replace(true);
    }
    Ok(true)
}

/// The app's pid in the data dir, so `mynakyukyu-admin wipe` can stop it first.
fn write_pid_file(data: &std::path::Path) {
    let path = data.join(mynakyukyu::admin::APP_PID_FILE);
    if let Err(e) = std::fs::write(&path, std::process::id().to_string()) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the pid file");
    }
}

/// The tablet cannot start: the English reason to the log, and with a display a window
/// that says so in Japanese and offers nothing to tap (until it is closed).
fn show_stopped(e: &mynakyukyu::app::device::DeviceError) {
    tracing::error!(error = %e, "the tablet refuses to start");
    if has_display() {
        use slint::ComponentHandle;
        if let Ok(app) = mynakyukyu::ui::AppWindow::new() {
            mynakyukyu::ui::show_stopped(&app, e.screen_message());
            let _fit = mynakyukyu::ui::follow_window_size(&app);
            let _ = app.run();
        }
    }
}

fn card_info(
    reader: Option<&str>,
    out: Option<PathBuf>,
    timeout: u64,
) -> Result<bool, Box<dyn std::error::Error>> {
    use mynakyukyu::card::{jpki, pcsc_reader::Pcsc};
    let pcsc = Pcsc::establish()?;
    eprintln!("waiting for a card…");
    let name = pcsc.wait_for_card(reader, std::time::Duration::from_secs(timeout))?;
    let mut card = pcsc.connect(&name)?;
    let read = jpki::read_auth_certificate(&mut card)?;
    let summary = mynakyukyu::pki::inspect(&read.der, time::OffsetDateTime::now_utc())?;
    println!("reader:     {name}");
    println!("token:      {}", read.token.name());
    println!("serial:     {}", summary.serial_hex);
    println!("issuer:     {}", summary.issuer);
    println!("not before: {}", summary.not_before);
    println!("not after:  {}", summary.not_after);
    println!(
        "validity:   {:?} ({} days left)",
        summary.validity, summary.days_left
    );
    println!("apdus:      {}", read.apdus);
    if let Some(path) = out {
        std::fs::write(&path, &read.der).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(summary.validity == mynakyukyu::pki::Validity::Valid)
}

/// `--exit-when-ready`: once the event loop runs with the window shown at the size it asked
/// for (its preferred 1280×800 logical; on a loaded machine the first frames can come while
/// the X server still has the window at its minimum, 960×540, and the window's own later
/// frames are the ones a crew sees; a compositor that gives another size is taken as it is
/// after 2 s), render one full frame of the first screen (winit's software renderer has no
/// frame notifier, so the frame is taken with `take_snapshot`, which costs what a frame
/// costs), print the process's resident memory and leave the event loop.
fn quit_after_first_frame(
    app: &mynakyukyu::ui::AppWindow,
) -> Result<(), Box<dyn std::error::Error>> {
    use slint::ComponentHandle;
    snapshot_when_sized(app.as_weak(), std::time::Instant::now());
    Ok(())
}

/// Look again in 5 ms until the window has its size (or 2 s passed), then take the frame.
fn snapshot_when_sized(weak: slint::Weak<mynakyukyu::ui::AppWindow>, started: std::time::Instant) {
    slint::Timer::single_shot(Duration::from_millis(5), move || {
        use slint::ComponentHandle;
        let Some(app) = weak.upgrade() else { return };
        let window = app.window();
        let logical = window.size().to_logical(window.scale_factor());
        let at_its_size = logical.width >= 1279.5 && logical.height >= 799.5;
        if !at_its_size && started.elapsed() < Duration::from_secs(2) {
            snapshot_when_sized(weak, started);
            return;
        }
        let frame = window.take_snapshot();
        let (rss, hwm) = mynakyukyu::cli::resident_memory_kib();
        let kib = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        match frame {
            Ok(f) => println!(
                "ready frame={}x{} rss_kib={} hwm_kib={}",
                f.width(),
                f.height(),
                kib(rss),
                kib(hwm)
            ),
            Err(e) => eprintln!("error: no first frame: {e}"),
        }
        let _ = slint::quit_event_loop();
    });
}
