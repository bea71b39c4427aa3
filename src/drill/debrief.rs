//! The debrief of a drill: the report as the text a trainer reads in a terminal and as the
//! HTML page kept with the drill (clinical alerts redacted in the copy kept on the tablet).

use super::*;

/// The report as the text a trainer reads in a terminal.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "【訓練 TRAINING】 {} — {}\n",
        report.scenario, report.title
    ));
    for e in &report.timeline {
        out.push_str(&format!(
            "  {:>8.1} ms  {:<32} → {}{}\n",
            e.at_ms,
            e.what,
            e.phase,
            e.notice.map(|n| format!("  ({n})")).unwrap_or_default()
        ));
    }
    out.push_str(&format!("  path:     {}\n", report.path.join(" → ")));
    if !report.alerts.is_empty() {
        out.push_str(&format!("  alerts:   {}\n", report.alerts.join(", ")));
    }
    out.push_str(&format!(
        "  records:  {} consent, {} audit; {} inquiries at the server; {} taps\n",
        report.consent_records.len(),
        report.audit.len(),
        report.server_inquiries,
        report.taps
    ));
    if let Some(line) = handoff_line(report) {
        out.push_str(&format!("  hand-off: {line}\n"));
    }
    out.push_str(&format!(
        "  result:   {}\n",
        if report.passed {
            "PASS (expected path)"
        } else {
            "FAIL (path differs from the scenario's expected path)"
        }
    ));
    out
}

/// 照会 → 搬送決定 in one line: the time from the first request, the taps from the card
/// (or 「搬送先照会」) to 搬送決定, how many hospitals were asked.
fn handoff_line(report: &Report) -> Option<String> {
    let asked: usize = report
        .handoff
        .iter()
        .map(|e| match e {
            crate::domain::HandoffEvent::Asked { hospitals, .. } => hospitals.len(),
            _ => 0,
        })
        .sum();
    if asked == 0 {
        return None;
    }
    Some(format!(
        "照会 {asked} 病院; 最初の照会から搬送決定まで {}; 搬送決定までのタップ {}",
        report
            .handoff_to_decision_ms
            .map(|ms| format!("{:.1} s", ms / 1000.0))
            .unwrap_or_else(|| "—（未決定）".into()),
        report
            .taps_to_decision
            .map(|t| t.to_string())
            .unwrap_or_else(|| "—".into())
    ))
}

impl Report {
    /// The copy kept in the training data dir: the clinical alerts are replaced by their
    /// count and whether they matched, so no clinical item lies readable on disk.
    pub fn redacted(&self) -> Report {
        let mut r = self.clone();
        // scenario titles name drugs and conditions too
        r.title = String::new();
        let matched = self.expected_alerts.iter().all(|a| self.alerts.contains(a));
        r.alerts = vec![format!("[{} alerts redacted]", self.alerts.len())];
        r.expected_alerts = vec![format!(
            "[{} expected, {}]",
            self.expected_alerts.len(),
            if matched {
                "all shown"
            } else {
                "NOT all shown"
            }
        )];
        r
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The debrief as a page a trainer opens in a browser after the drill.
pub fn render_html(report: &Report) -> String {
    let mut rows = String::new();
    for e in &report.timeline {
        rows.push_str(&format!(
            "<tr><td class=n>{:.1}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            e.at_ms,
            escape(&e.what),
            e.phase,
            escape(e.notice.unwrap_or(""))
        ));
    }
    let mut steps = String::new();
    for s in &report.steps {
        steps.push_str(&format!(
            "<tr><td>{}</td><td class=n>{:.1}</td><td>{}</td></tr>\n",
            escape(&s.step),
            s.ms,
            s.screen
        ));
    }
    let verdict = if report.passed {
        "<p class=pass>PASS — 想定どおりの経路</p>"
    } else {
        "<p class=fail>FAIL — 想定経路と異なります</p>"
    };
    format!(
        "<!doctype html><html lang=ja><meta charset=utf-8><title>訓練 debrief {scenario}</title>\n\
<style>body{{font-family:'Noto Sans CJK JP',sans-serif;margin:2em}}.banner{{background:#e65c00;color:#fff;padding:.5em 1em;font-weight:bold}}\
table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:.2em .6em}}.n{{text-align:right}}.pass{{color:#00702a;font-weight:bold}}.fail{{color:#b00020;font-weight:bold}}</style>\n\
<div class=banner>訓練 TRAINING — 模擬患者のデータです</div>\n\
<h1>{scenario}: {title}</h1>\n{verdict}\n\
<p>開始 {started} / 合計 {total:.1} ms / タップ {taps} 回 / 照会 {inquiries} 件（{endpoint}）</p>\n\
<h2>経路</h2><p>実際: {path}<br>想定: {expected}</p>\n\
{handoff}<h2>注意表示</h2><p>{alerts}</p>\n<h2>表示されたエラー</h2><p>{errors}</p>\n\
<h2>手順ごとの所要時間</h2><table><tr><th>手順</th><th>ms</th><th>画面</th></tr>\n{steps}</table>\n\
<h2>タイムライン</h2><table><tr><th>ms</th><th>出来事</th><th>状態</th><th>表示</th></tr>\n{rows}</table>\n</html>\n",
        scenario = escape(&report.scenario),
        title = escape(&report.title),
        started = escape(&report.started_at),
        total = report.total_ms,
        taps = report.taps,
        inquiries = report.server_inquiries,
        endpoint = escape(&report.endpoint),
        path = report.path.join(" → "),
        expected = escape(&report.expected_path.join(" → ")),
        alerts = escape(&report.alerts.join("、")),
        errors = escape(&report.errors_met.join(" / ")),
        handoff = handoff_line(report)
            .map(|l| format!("<h2>搬送先照会</h2><p>{}</p>\n", escape(&l)))
            .unwrap_or_default(),
    )
}
