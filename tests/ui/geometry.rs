//! Nothing moves under a finger and no text is cut: every state of every screen at every panel size.

use super::*;

/// A control on screen: its identity, whether it takes taps, where it is.
#[derive(Clone, Debug)]
struct Control {
    key: String,
    label: String,
    enabled: bool,
    /// Its label needs more room than it has (the button says so: widgets.slint).
    clipped: bool,
    rect: (f32, f32, f32, f32),
}

/// Every button on screen. A control is known by its element id (so a button relabelled in
/// place is the same control), or by id and label where one id stands for many (keypads).
fn controls(app: &AppWindow) -> Vec<Control> {
    let found = ElementQuery::from_root(app)
        .match_accessible_role(i_slint_backend_testing::AccessibleRole::Button)
        .find_all();
    let mut out: Vec<Control> = found
        .iter()
        .filter(|h| h.computed_opacity() > 0.0)
        .map(|h| {
            let p = h.absolute_position();
            let s = h.size();
            Control {
                key: h.id().map(|s| s.to_string()).unwrap_or_default(),
                label: h
                    .accessible_label()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                enabled: h.accessible_enabled() == Some(true),
                clipped: h.accessible_description().as_deref() == Some("clipped"),
                rect: (p.x, p.y, s.width, s.height),
            }
        })
        .collect();
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for c in &out {
        *seen.entry(c.key.clone()).or_default() += 1;
    }
    for c in &mut out {
        if c.key.is_empty() || seen[&c.key] > 1 || in_scroll_list(c) {
            c.key = format!("{}|{}", c.key, c.label);
        }
    }
    out
}

/// The texts on screen that need more room than their box gives them (`WholeText` and the
/// status items say so through their accessible description).
fn clipped_texts(app: &AppWindow) -> Vec<String> {
    ElementQuery::from_root(app)
        .match_descendants()
        .match_predicate(|e| {
            e.accessible_description().as_deref() == Some("clipped")
                && e.accessible_role() == Some(i_slint_backend_testing::AccessibleRole::Text)
                && e.computed_opacity() > 0.0
        })
        .find_all()
        .iter()
        .map(|h| {
            let s = h.size();
            format!(
                "{:?} in {:.0}×{:.0}",
                h.accessible_label().unwrap_or_default(),
                s.width,
                s.height
            )
        })
        .collect()
}

/// The same place to a finger: within half a pixel (layouts sum floats).
fn same_place(a: (f32, f32, f32, f32), b: (f32, f32, f32, f32)) -> bool {
    (a.0 - b.0).abs() < 0.5
        && (a.1 - b.1).abs() < 0.5
        && (a.2 - b.2).abs() < 0.5
        && (a.3 - b.3).abs() < 0.5
}

/// Overlapping by more than the half pixel layouts round to.
fn overlaps(a: (f32, f32, f32, f32), b: (f32, f32, f32, f32)) -> bool {
    a.0 + 0.5 < b.0 + b.2 && b.0 + 0.5 < a.0 + a.2 && a.1 + 0.5 < b.1 + b.3 && b.1 + 0.5 < a.1 + a.3
}

/// Buttons in a scrolling list: they may lie below the list's visible part.
fn in_scroll_list(c: &Control) -> bool {
    c.key.starts_with("SignInScreen::crew")
        || c.key.starts_with("TrainerPanel::scenario")
        || c.key.starts_with("HandoffHospitalsScreen::hospital")
}

struct Walk {
    size: (f32, f32),
    /// The theme's smallest control at this size.
    touch: f32,
    /// Where the chrome (training banner and status strip) ends.
    strip_bottom: f32,
    last: Option<(Screen, String, Vec<Control>)>,
    states: usize,
    failures: Vec<String>,
}

impl Walk {
    fn new(r: &Rig, size: (f32, f32)) -> Walk {
        let theme = r.app.global::<Theme>();
        assert_eq!(
            (theme.get_window_width(), theme.get_window_height()),
            size,
            "the theme knows the window's size"
        );
        assert_eq!(theme.get_compact(), size.1 < 760.0, "compact below 760 px");
        Walk {
            size,
            touch: theme.get_touch(),
            strip_bottom: theme.get_banner_height() + theme.get_strip_height(),
            last: None,
            states: 0,
            failures: vec![],
        }
    }

    fn snap(&mut self, r: &Rig, state: &str) {
        let screen = r.screen();
        let now = controls(&r.app);
        assert!(!now.is_empty(), "{state}: no controls found");
        let (w, h) = self.size;
        let tag = format!("{w}×{h} {state}");
        // every control whole, inside the window, at least a finger's size, label whole
        for c in &now {
            let (x, y, cw, ch) = c.rect;
            let inside_x = x > -0.5 && x + cw < w + 0.5;
            let inside_y = y > -0.5 && y + ch < h + 0.5;
            if !inside_x || (!inside_y && !in_scroll_list(c)) {
                self.failures.push(format!(
                    "{tag}: {:?} outside the window: {:?}",
                    c.label, c.rect
                ));
            }
            if cw.min(ch) + 0.5 < self.touch {
                self.failures.push(format!(
                    "{tag}: {:?} smaller than a finger ({} px): {:?}",
                    c.label, self.touch, c.rect
                ));
            }
            if c.clipped {
                self.failures
                    .push(format!("{tag}: {:?}'s label is cut: {:?}", c.label, c.rect));
            }
        }
        // no two controls on top of each other (the trainer panel is an overlay by design)
        if !r.api().get_trainer_open() {
            for (i, a) in now.iter().enumerate() {
                for b in &now[i + 1..] {
                    if overlaps(a.rect, b.rect) && !in_scroll_list(a) && !in_scroll_list(b) {
                        self.failures.push(format!(
                            "{tag}: {:?} {:?} overlaps {:?} {:?}",
                            a.label, a.rect, b.label, b.rect
                        ));
                    }
                }
            }
        }
        for t in clipped_texts(&r.app) {
            self.failures.push(format!("{tag}: text cut: {t}"));
        }
        // no screen has a field to type into: the tablet has no keyboard
        let typing = ElementQuery::from_root(&r.app)
            .match_descendants()
            .match_accessible_role(i_slint_backend_testing::AccessibleRole::TextInput)
            .find_all();
        if !typing.is_empty() {
            self.failures.push(format!(
                "{tag}: {} text field(s) need a keyboard",
                typing.len()
            ));
        }
        if let Some((prev_screen, prev_state, prev)) = &self.last {
            for c in &now {
                let before = prev.iter().find(|p| p.key == c.key);
                let same_screen = *prev_screen == screen;
                match before {
                    Some(p)
                        if (same_screen || c.rect.1 < self.strip_bottom)
                            && !same_place(p.rect, c.rect) =>
                    {
                        self.failures.push(format!(
                            "{tag}: {prev_state} → {state}: {:?} ({}) moved {:?} → {:?}",
                            c.key, c.label, p.rect, c.rect
                        ));
                    }
                    None if same_screen && c.enabled => {
                        // a control that appears must not stand where another one stood
                        for p in prev.iter().filter(|p| p.key != c.key) {
                            if overlaps(p.rect, c.rect) && !now.iter().any(|n| n.key == p.key) {
                                self.failures.push(format!(
                                    "{tag}: {prev_state} → {state}: {:?} appeared where {:?} was",
                                    c.label, p.label
                                ));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        self.last = Some((screen, state.to_string(), now));
        self.states += 1;
    }
}

/// The panels a tablet meets (logical size = pixels / scale factor): the six panel sizes
/// at scale 1, and the two full-HD panels at scale 2 (and 1920×1200 at 1.5, which is
/// 1280×800).
const PANELS: [(&str, f32, f32); 8] = [
    ("1024×600", 1024.0, 600.0),
    ("1280×720", 1280.0, 720.0),
    ("1366×768", 1366.0, 768.0),
    ("1280×800", 1280.0, 800.0),
    ("1920×1080", 1920.0, 1080.0),
    ("1920×1200", 1920.0, 1200.0),
    ("1920×1080 @2", 960.0, 540.0),
    ("1920×1200 @2", 960.0, 600.0),
];

/// Every state of every screen at one window size.
fn walk_every_state(width: f32, height: f32) -> Walk {
    let mut r = Rig::with_size(width, height);
    let mut w = Walk::new(&r, (width, height));
    // sign-in: empty, a crew member chosen, PIN typed, wrong PIN, a long notice, a
    // department of a hundred
    w.snap(&r, "sign-in");
    r.tap(TRAINING_CREW_NAME);
    w.snap(&r, "sign-in crew chosen");
    for d in "9999".chars() {
        r.tap(&d.to_string());
    }
    w.snap(&r, "sign-in pin");
    r.tap("サインイン");
    w.snap(&r, "sign-in refused");
    r.api().set_notice(
        "操作がなかったためロックしました。再度サインインしてください。"
            .repeat(3)
            .into(),
    );
    w.snap(&r, "sign-in long notice");
    r.api().set_notice("".into());
    let roster = r.api().get_crew_list();
    r.api()
        .set_crew_list(slint::ModelRc::new(slint::VecModel::from(
            // the roster's first member stays first; 99 more below
            roster
                .iter()
                .take(1)
                .chain((1..100).map(|i| mynakyukyu::ui::CrewItem {
                    id: format!("EMT-{i:04}").into(),
                    name: format!("救急 隊員{i}").into(),
                }))
                .collect::<Vec<_>>(),
        )));
    w.snap(&r, "sign-in a hundred crew");
    r.api().set_crew_list(roster);
    r.pump();
    r.sign_in();
    w.snap(&r, "ready");
    // ready: a notice (card pulled), busy, retry offered
    let id = r.world.patient_id("P0031").unwrap();
    r.world.place_card(&id).unwrap();
    r.world.reader.remove_after_apdus(3);
    r.send(Command::CardPlaced);
    w.snap(&r, "ready card pulled");
    r.api().set_busy("資格を確認中…".into());
    w.snap(&r, "ready busy");
    r.api().set_offers_retry(true);
    r.api().set_notice_is_error(true);
    r.api()
        .set_notice("サーバーの応答が不正です。再送するか、閲覧を終了してください。".into());
    w.snap(&r, "ready retry offered");
    r.pump();
    w.snap(&r, "ready again");
    // a phone: its PIN screen empty, typed, a wrong PIN, then the patient cannot enter it
    r.hold_phone("diabetic-insulin", mynakyukyu::drill::Carrier::Android);
    w.snap(&r, "phone pin");
    for d in "0000".chars() {
        r.tap(&d.to_string());
    }
    w.snap(&r, "phone pin typed");
    r.tap("確認");
    w.snap(&r, "phone pin wrong");
    r.tap("本人が入力できない（意識なし等）");
    w.snap(&r, "phone unusable");
    r.tap("終了");
    w.snap(&r, "ready after the phone");
    // consent: unconfirmed, PIN pad open with its messages, confirmed, busy, waiting
    r.place_card("diabetic-insulin");
    w.snap(&r, "consent");
    r.tap("写真で確認できない → 暗証番号");
    w.snap(&r, "consent pin pad");
    for d in "0000".chars() {
        r.tap(&d.to_string());
    }
    w.snap(&r, "consent pin typed");
    r.tap("確認");
    w.snap(&r, "consent pin wrong");
    r.api().set_pin_confirm_last_try(true);
    r.api().set_pin_message(
        "残り1回です。間違えるとカードがロックされます。確認してもう一度押してください".into(),
    );
    w.snap(&r, "consent pin last try");
    r.pump();
    r.tap("写真確認に戻る");
    r.pump();
    w.snap(&r, "consent pin closed");
    r.tap("顔写真と本人が一致");
    w.snap(&r, "consent confirmed");
    r.api().set_busy("救急用サマリーを照会中…".into());
    w.snap(&r, "consent busy");
    r.api().set_waiting_for_link(true);
    r.api()
        .set_busy("回線待ち — 記録は保持され、回線復旧後に自動で再送します".into());
    r.api().set_notice(
        "回線が切れています。記録は保存済みです。回線が戻ると自動で再送します。".into(),
    );
    w.snap(&r, "consent waiting for the line");
    r.api().set_case_closed(true);
    r.api().set_offers_retry(true);
    w.snap(&r, "consent failed, retry offered");
    r.pump();
    w.snap(&r, "consent confirmed again");
    r.tap("拒否");
    w.snap(&r, "consent refused (case closed)");
    r.tap("終了して次の患者へ");
    w.snap(&r, "ready after refusal");
    r.place_card("opt-out");
    w.snap(&r, "consent opt-out");
    r.tap("終了して次の患者へ");
    // summary and full data: notes, correction panel, explanation owed and handed
    r.place_card("elderly-warfarin");
    w.snap(&r, "consent 2");
    r.tap("顔写真と本人が一致");
    w.snap(&r, "consent 2 confirmed");
    r.tap("同意取得困難（意識障害等）");
    w.snap(&r, "consent 2 reason picker");
    r.tap("同意の選択に戻る");
    w.snap(&r, "consent 2 reason picker closed");
    r.tap("同意取得困難（意識障害等）");
    w.snap(&r, "consent 2 reason picker again");
    r.tap("意識障害");
    w.snap(&r, "summary, explanation owed");
    r.tap("同意を訂正");
    w.snap(&r, "summary correction panel");
    r.tap("訂正しない");
    w.snap(&r, "summary correction closed");
    r.tap("説明書を渡した");
    w.snap(&r, "summary explanation handed");
    r.tap("全量版を見る");
    w.snap(&r, "full data");
    r.tap("同意を訂正");
    w.snap(&r, "full data correction panel");
    r.tap("口頭同意ありに訂正");
    w.snap(&r, "full data corrected");
    r.tap("同意を訂正");
    w.snap(&r, "full data correction panel again");
    r.tap("同意取得困難に訂正");
    w.snap(&r, "full data correction reasons");
    r.tap("その他");
    w.snap(&r, "full data corrected to unobtainable");
    r.tap("サマリーに戻る");
    w.snap(&r, "summary corrected");
    r.tap("閲覧終了");
    w.snap(&r, "ready after viewing");
    r.place_card("invalid-coverage");
    r.tap("顔写真と本人が一致");
    r.tap("口頭同意あり");
    w.snap(&r, "summary, most recent valid coverage");
    r.tap("閲覧終了");
    // the most crowded notes band: lapsed 医療扶助 (coverage note), 同意取得困難 with its
    // reason, the explanation owed with the department's contact
    r.place_card("public-assistance-lapsed");
    r.tap("顔写真と本人が一致");
    r.tap("同意取得困難（意識障害等）");
    r.tap("意識障害");
    w.snap(
        &r,
        "summary, lapsed public assistance, explanation owed with contact",
    );
    r.tap("閲覧終了");
    walk_handoff(&mut r, &mut w);
    r.tap("訓練操作");
    w.snap(&r, "trainer panel");
    r.tap("訓練操作");
    r.tap("サインアウト");
    w.snap(&r, "signed out");
    w
}

/// 搬送先照会: from a summary through findings, vitals (a refused value), hospitals, the
/// answers as they come, 搬送決定, the updates and 到着; then without a card.
fn walk_handoff(r: &mut Rig, w: &mut Walk) {
    r.place_card("elderly-warfarin");
    r.tap("顔写真と本人が一致");
    r.tap("口頭同意あり");
    w.snap(r, "summary offering 搬送先照会");
    r.tap("搬送先照会");
    w.snap(r, "handoff findings");
    r.tap("主訴 意識障害");
    r.tap("突然発症");
    r.tap("到着まで +");
    w.snap(r, "handoff findings chosen");
    r.tap("バイタル入力");
    w.snap(r, "handoff vitals");
    r.tap("JCS +");
    for _ in 0..20 {
        r.tap("血圧（上） +");
    }
    w.snap(r, "handoff vitals, a value refused");
    r.tap("戻る");
    w.snap(r, "handoff findings with vitals");
    r.tap("病院を選ぶ →");
    w.snap(r, "handoff hospitals");
    let names: Vec<String> = r
        .api()
        .get_handoff()
        .hospitals
        .iter()
        .take(3)
        .map(|h| h.name.to_string())
        .collect();
    for n in &names {
        r.tap(n);
    }
    w.snap(r, "handoff hospitals chosen");
    r.tap("照会送信");
    w.snap(r, "handoff answers waiting");
    r.wait(|vm| {
        vm.handoff
            .candidates
            .iter()
            .all(|c| c.kind != mynakyukyu::app::view::handoff::AnswerKind::Waiting)
    });
    w.snap(r, "handoff answers in (受入可, 受入不可, 要電話)");
    let accepting = r
        .api()
        .get_handoff()
        .candidates
        .iter()
        .find(|c| c.can_decide)
        .map(|c| c.name.to_string())
        .unwrap();
    r.tap(&format!("搬送決定 {accepting}"));
    w.snap(r, "handoff decided");
    r.tap("到着予定 −5分");
    r.tap("バイタル更新");
    w.snap(r, "handoff vitals after the decision");
    r.tap("この値を送信");
    w.snap(r, "handoff decided, vitals sent");
    r.tap("到着");
    w.snap(r, "handoff arrived");
    r.tap("サマリーへ");
    w.snap(r, "summary offering 照会に戻る");
    r.tap("閲覧終了");
    r.tap("搬送先照会（カードなし）");
    w.snap(r, "handoff findings without a card");
    r.tap("年代（推定） +");
    r.tap("性別: —");
    r.tap("主訴 胸痛");
    w.snap(r, "handoff findings without a card, estimates");
    r.tap("照会終了");
    w.snap(r, "ready after the hand-off");
}

#[test]
fn no_control_moves_under_a_finger_in_any_state_of_any_screen_at_any_panel_size() {
    let mut states = 0;
    let mut failures = vec![];
    for (panel, width, height) in PANELS {
        let w = walk_every_state(width, height);
        assert!(w.states >= 56, "{panel}: {} states walked", w.states);
        states += w.states;
        failures.extend(w.failures.into_iter().map(|f| format!("[{panel}] {f}")));
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    common::reliability_row(
        "ui-geometry",
        "UI",
        "every screen walked through its states (sign-in with a crew chosen, errors and a hundred crew, ready notices and retry, consent with PIN pad, busy, waiting for the line, case closed, summary and full data with correction panel and explanation, 搬送先照会 findings, vitals with a refused value, hospitals, answers as they come, 搬送決定, ETA, new vitals and 到着, and without a card) at 1024×600, 1280×720, 1366×768, 1280×800, 1920×1080, 1920×1200 and the full-HD panels at scale 2 (960×540, 960×600); every button's place compared between consecutive states; every button inside the window, at least the theme's touch size, not overlapping another, its label whole; no text clipped; no text field",
        states,
        0,
        "no control moved, overlapped, left the window or lost its label; no text cut; nothing to type into",
    );
}

#[test]
fn no_clinical_text_is_cut_for_any_simulated_patient_on_the_smallest_window() {
    // the smallest window a tablet gives (a full-HD panel at scale 2): every patient of the
    // simulator read, viewed and shown in full, every text checked against its box
    let (width, height) = (960.0, 540.0);
    let mut r = Rig::with_size(width, height);
    r.sign_in();
    let mut viewed = 0;
    let mut failures = vec![];
    for n in 1..=mynakyukyu::sim::patients::DEFAULT_POPULATION {
        let id = format!("P{n:04}");
        if r.world.patient_id(&id).is_none() {
            continue;
        }
        r.world.place_card(&id).unwrap();
        r.send(Command::CardPlaced);
        if r.enabled("顔写真と本人が一致") {
            r.tap("顔写真と本人が一致");
        }
        if r.enabled("口頭同意あり") {
            r.tap("口頭同意あり");
        }
        for t in clipped_texts(&r.app) {
            failures.push(format!("{id} {:?}: {t}", r.screen()));
        }
        if r.screen() == Screen::Summary {
            viewed += 1;
            r.tap("全量版を見る");
            for t in clipped_texts(&r.app) {
                failures.push(format!("{id} full data: {t}"));
            }
            r.tap("閲覧終了");
        } else {
            for end in ["終了して次の患者へ", "中止して終了", "終了"] {
                if r.enabled(end) {
                    r.tap(end);
                    break;
                }
            }
        }
        // the crew takes the card back before the next patient
        r.send(Command::CardRemoved);

        assert_eq!(
            r.screen(),
            Screen::Ready,
            "{id}: back to Ready: {:?}",
            r.controller.view().notice
        );
    }
    assert!(viewed >= 20, "only {viewed} patients viewed");
    assert!(
        failures.is_empty(),
        "text cut at {width}×{height}:\n{}",
        failures.join("\n")
    );
}
