//! The inbox's HTML, server-side rendered with maud (checked at compile time, every value
//! escaped: a `<script>` a crew typed arrives as text). Japanese, large type, buttons as big
//! as a gloved finger; a few lines of plain JS (`/static/inbox.js`) refresh the list when
//! an event arrives, sound and flash until someone answers, and count the ETA down.

use super::store::{Hospital, StoredCase};
use crate::handoff::{AgeBand, Answer, Change, DeclineReason, Stage, Visibility, Vitals};
use maud::{DOCTYPE, Markup, html};

pub const STYLE: &str = r#"
* { box-sizing: border-box; }
body { margin: 0; font-family: "Noto Sans CJK JP", "Noto Sans JP", sans-serif; font-size: 22px;
  background: #f4f6f8; color: #111; }
header { display: flex; justify-content: space-between; align-items: center; padding: 12px 20px;
  background: #123; color: #fff; }
header h1 { font-size: 28px; margin: 0; }
header form { margin: 0; }
main { padding: 16px; display: grid; gap: 16px; }
.signin { max-width: 560px; margin: 48px auto; background: #fff; padding: 24px; border-radius: 12px; }
.signin label { display: block; margin: 16px 0 4px; }
.signin input { width: 100%; font-size: 28px; padding: 10px; }
.error { background: #fde2e2; color: #8a0000; padding: 12px; border-radius: 8px; font-weight: bold; }
.case { background: #fff; border-radius: 12px; padding: 16px 20px; border-left: 12px solid #9aa; }
.case.unacked { border-left-color: #d00; animation: flash 1s step-start infinite; }
@keyframes flash { 50% { background: #ffe3e3; } }
.case h2 { margin: 0 0 8px; font-size: 30px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0; }
.facts dt { color: #555; } .facts dd { margin: 0; font-weight: bold; }
.answers { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 12px; }
.answers form { margin: 0; }
button { font-size: 26px; min-height: 72px; min-width: 180px; padding: 8px 20px; border-radius: 10px;
  border: 2px solid #234; background: #fff; cursor: pointer; font-family: inherit; }
button.accept { background: #0a6; color: #fff; border-color: #064; }
button.decline { background: #b22; color: #fff; border-color: #700; }
button.call { background: #f3c300; border-color: #a80; }
select, .answers input { font-size: 24px; min-height: 72px; }
.changed { background: #fff3a8; outline: 3px solid #e0b000; }
.closed { color: #555; }
.eta { font-size: 34px; font-weight: bold; }
.mine { font-size: 24px; font-weight: bold; }
small { color: #555; }
header small.hospital { color: #cde; }
button.small { min-height: 48px; min-width: 0; font-size: 18px; }
dl.facts.inline { display: inline-grid; }
a.export { align-self: center; }
"#;

pub const SCRIPT: &str = r#"(() => {
  const body = document.body;
  const list = document.getElementById('cases');
  if (!list) return;
  let audio = null;
  function beep() {
    body.dataset.beeps = String(Number(body.dataset.beeps || 0) + 1);
    try {
      audio = audio || new AudioContext();
      const o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = 880; g.gain.value = 0.3;
      o.connect(g); g.connect(audio.destination);
      o.start(); o.stop(audio.currentTime + 0.5);
    } catch (e) { /* no audio device: the flashing row still shows it */ }
  }
  function pending() {
    const on = list.querySelector('[data-unacked]') !== null;
    body.dataset.alert = on ? 'on' : 'off';
    return on;
  }
  function countdown() {
    for (const el of document.querySelectorAll('[data-eta-ms]')) {
      const left = Math.round((Number(el.dataset.etaMs) - Date.now()) / 60000);
      el.textContent = left > 0 ? 'あと' + left + '分' : '到着予定時刻を過ぎました';
    }
  }
  async function refresh() {
    let r;
    try {
      r = await fetch('/cases', { credentials: 'same-origin', cache: 'no-store' });
    } catch (e) { return; /* the hub is away: the stream's reconnect refreshes */ }
    if (r.status === 401) { location.href = '/sign-in'; return; }
    if (r.status !== 200) return;
    list.innerHTML = await r.text();
    countdown();
    if (pending()) beep();
  }
  // EventSource reconnects by itself with Last-Event-ID; if it gives up (the hub was
  // away too long), a new one resumes from the last id seen, passed as ?after=
  let es = null;
  function connect() {
    const last = body.dataset.lastEvent;
    es = new EventSource(last ? '/events?after=' + encodeURIComponent(last) : '/events');
    es.onopen = () => { body.dataset.connected = '1'; refresh(); };
    es.onerror = () => {
      body.dataset.connected = '0';
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
    };
    es.onmessage = (e) => { body.dataset.lastEvent = e.lastEventId; refresh(); };
  }
  connect();
  setInterval(() => { if (pending()) beep(); }, 10000);
  setInterval(countdown, 15000);
  countdown();
  if (pending()) beep();
})();
"#;

fn layout(title: &str, header: Option<Markup>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="ja" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href="/static/inbox.css";
            }
            body data-alert="off" {
                @if let Some(h) = header { (h) }
                (content)
            }
        }
    }
}

/// The sign-in form, with what went wrong last time.
pub fn sign_in(error: Option<&str>) -> Markup {
    layout(
        "サインイン — 救急受入照会",
        None,
        html! {
            form.signin method="post" action="/sign-in" {
                h1 { "救急受入照会 サインイン" }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                label for="login" { "ID" }
                input #login name="login" autocomplete="username" required;
                label for="password" { "パスワード" }
                input #password name="password" type="password" autocomplete="current-password" required;
                label for="code" { "確認コード（認証アプリの6桁）" }
                input #code name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required;
                p { button.accept #sign-in type="submit" { "サインイン" } }
            }
        },
    )
}

/// The inbox page: the list is rendered here too, so the first paint needs no script.
pub fn inbox(hospital: &Hospital, staff_name: &str, csrf: &str, cases: Markup) -> Markup {
    layout(
        &format!("受入照会 — {}", hospital.name),
        Some(html! {
            header {
                h1 { "救急受入照会 " small.hospital { (hospital.name) } }
                form method="post" action="/sign-out" {
                    span { (staff_name) " " }
                    input type="hidden" name="csrf" value=(csrf);
                    button.small type="submit" { "サインアウト" }
                }
            }
        }),
        html! {
            main #cases aria-live="polite" { (cases) }
            script src="/static/inbox.js" {}
        },
    )
}

fn vitals_rows(v: &Vitals) -> Markup {
    html! {
        @if let Some(j) = v.jcs { dt { "JCS" } dd { (j.value()) } }
        @if let Some(g) = v.gcs { dt { "GCS" } dd { (g) } }
        @if let (Some(s), Some(d)) = (v.bp_systolic, v.bp_diastolic) { dt { "血圧" } dd { (s) "/" (d) " mmHg" } }
        @else if let Some(s) = v.bp_systolic { dt { "血圧" } dd { (s) " mmHg（収縮期）" } }
        @if let Some(h) = v.heart_rate { dt { "脈拍" } dd { (h) " /分" } }
        @if let Some(r) = v.respiratory_rate { dt { "呼吸数" } dd { (r) " /分" } }
        @if let Some(s) = v.spo2 { dt { "SpO₂" } dd { (s) " %" } }
        @if let Some(t) = v.temperature_tenths { dt { "体温" } dd { (t / 10) "." (t % 10) " ℃" } }
    }
}

fn time_hm(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(time::macros::offset!(+9));
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// One case as `hospital` may see it (`visibility` is not Nothing).
pub fn case(
    stored: &StoredCase,
    visibility: Visibility,
    hospital: &crate::handoff::HospitalCode,
    csrf: &str,
) -> Markup {
    let c = &stored.body.case;
    let d = &c.disclosure;
    let mine = c.answer_of(hospital);
    let unacked = match visibility {
        Visibility::Request => mine.is_none(),
        Visibility::Packet => c.acknowledged < c.version,
        Visibility::Nothing => false,
    };
    let id = &stored.id;
    html! {
        section.case.unacked[unacked] id={"case-" (id)} data-case=(id) data-unacked[unacked] data-version=(c.version) {
            @match visibility {
                Visibility::Request => {
                    h2 { "受入照会 " (AgeBand::label_of(d.age_band)) " " (d.sex.label_ja()) " " (d.complaint.label_ja()) }
                }
                _ => {
                    h2 { "搬送決定 — 当院へ搬送します" }
                }
            }
            @if visibility == Visibility::Packet {
                (packet(stored, csrf))
            }
            dl.facts {
                dt { "照会時刻" } dd { (time_hm(c.asked_at_ms)) }
                dt { "年代・性別" } dd { (AgeBand::label_of(d.age_band)) " " (d.sex.label_ja()) }
                dt { "主訴" } dd { (d.complaint.label_ja())
                    @for m in &d.modifiers { " ・" (m.label_ja()) } }
                @if let Some(m) = d.onset_minutes_ago {
                    dt { "発症" } dd { "約" (m) "分前" }
                }
                (vitals_rows(&d.vitals))
                @for a in &d.alerts {
                    dt { "注意" }
                    dd { (a.label) " "
                        small { @match &a.source {
                            crate::handoff::AlertSource::NationalSystem { as_of } => { "（オンライン資格確認 " (as_of) "）" }
                            crate::handoff::AlertSource::Crew => { "（救急隊）" }
                        } }
                    }
                }
                @if let Some(m) = d.eta_minutes { dt { "到着まで" } dd { "約" (m) "分（照会時）" } }
                dt { "救急隊" } dd { (stored.unit) " ☎ " (d.callback) }
            }
            @if visibility == Visibility::Request {
                @if let Some(a) = mine {
                    p.mine { "当院の回答: " (a.answer.label_ja()) " " small { "(" (a.by) " " (time_hm(a.at_ms)) ")" } }
                }
                @if c.stage == Stage::Asking {
                    div.answers {
                        form method="post" action={"/cases/" (id) "/answer"} {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="answer" value="accept";
                            button.accept type="submit" data-action="accept" { "受入可" }
                        }
                        form method="post" action={"/cases/" (id) "/answer"} {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="answer" value="decline";
                            select name="reason" aria-label="受入不可の理由" {
                                @for r in DeclineReason::ALL { option value=(r.code()) { (r.label_ja()) } }
                            }
                            " "
                            button.decline type="submit" data-action="decline" { "受入不可" }
                        }
                        form method="post" action={"/cases/" (id) "/answer"} {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="answer" value="call_us";
                            input name="phone" inputmode="tel" placeholder="折返し番号" aria-label="折返し番号" required;
                            " "
                            button.call type="submit" data-action="call_us" { "要電話" }
                        }
                    }
                }
            }
        }
    }
}

fn packet(stored: &StoredCase, csrf: &str) -> Markup {
    let c = &stored.body.case;
    let eta = stored.body.eta_at_ms();
    html! {
        @if let Some(at) = eta {
            @if c.stage != Stage::Arrived {
                p.eta { "到着予定 " (time_hm(at)) " " span data-eta-ms=(at) {} }
            }
        }
        @if c.stage == Stage::Arrived { p.eta { "到着しました" } }
        @for (version, change) in c.changes.iter().rev() {
            p.changed[*version > c.acknowledged] data-change-version=(version) {
                "更新 v" (version) ": "
                @match change {
                    Change::Eta { minutes } => { "到着まで約" (minutes) "分" }
                    Change::Vitals { vitals } => { "バイタル " dl.facts.inline { (vitals_rows(vitals)) } }
                    Change::Arrived => { "到着" }
                }
            }
        }
        div.answers {
            @if c.acknowledged < c.version {
                form method="post" action={"/cases/" (stored.id) "/ack"} {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="version" value=(c.version);
                    button.accept type="submit" data-action="ack" { "確認しました（v" (c.version) "）" }
                }
            } @else {
                p.mine { "v" (c.version) " まで確認済み" }
            }
        }
        @if let Some(p) = &stored.body.packet {
            dl.facts {
                dt { "氏名" } dd { (p.patient.name) "（" (p.patient.kana) "）" }
                dt { "生年月日" } dd { (p.patient.birth_date) " " (p.patient.sex.label_ja()) }
                @if let Some(n) = &p.patient.insured_number { dt { "被保険者番号" } dd { (n) } }
                @if let Some(pc) = &p.consent {
                    dt { "同意" } dd { (pc.decision.label_ja())
                        @if let Some(r) = pc.reason { "（" (r.label_ja()) "）" }
                        " " small { (time_hm(pc.at_ms)) " " (pc.recorded_by) } }
                }
                @for m in &p.medications { dt { "薬剤" } dd { (m.text) @if let Some(d) = &m.as_of { " " small { "(" (d) " 処方・レセプト由来)" } } } }
                @for m in &p.diagnoses { dt { "傷病名" } dd { (m.text) @if let Some(d) = &m.as_of { " " small { "(" (d) " レセプト由来・未確定)" } } } }
                @for m in &p.procedures { dt { "手術・処置" } dd { (m.text) @if let Some(d) = &m.as_of { " " small { "(" (d) ")" } } } }
                @if !p.crew_note.is_empty() { dt { "救急隊メモ" } dd { (p.crew_note) } }
                @if !p.crew.is_empty() { dt { "隊員" } dd { (p.crew.join("、")) } }
            }
        }
        div.answers {
            a.export href={"/cases/" (stored.id) "/packet.json"} { "FHIR JSON" }
        }
    }
}

/// A case this hospital was asked about and may no longer see: when, and that it ended;
/// nothing of the patient (not even the case id).
pub fn closed_case(asked_at_ms: i64, elsewhere: bool) -> Markup {
    html! {
        section.case.closed-case {
            p.closed {
                (time_hm(asked_at_ms)) " の受入照会は終了しました"
                @if elsewhere { "（他院へ搬送決定）" } @else { "（救急隊が取り下げ）" }
                "。この照会の情報は表示されません。"
            }
        }
    }
}

/// The list of cases, or a line saying there are none.
pub fn cases(items: Vec<Markup>) -> Markup {
    html! {
        @if items.is_empty() {
            p.closed #empty { "照会はありません。新しい照会が来ると音と表示でお知らせします。" }
        }
        @for i in items { (i) }
    }
}

/// The answer on the page after a refused step.
pub fn message(title: &str, text: &str) -> Markup {
    layout(
        title,
        None,
        html! {
            div.signin {
                h1 { (title) }
                p.error role="alert" { (text) }
                p { a href="/" { "受入照会へ戻る" } }
            }
        },
    )
}

/// A decline's answer from a form's fields.
pub fn answer_from_form(answer: &str, reason: Option<&str>, phone: Option<&str>) -> Option<Answer> {
    match answer {
        "accept" => Some(Answer::Accept),
        "decline" => Some(Answer::Decline {
            reason: DeclineReason::from_code(reason.unwrap_or("other"))?,
        }),
        "call_us" => {
            let phone = phone?.trim();
            let ok = !phone.is_empty()
                && phone.len() <= 20
                && phone
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '-' || c == '+');
            ok.then(|| Answer::CallUs {
                phone: phone.to_string(),
            })
        }
        _ => None,
    }
}
