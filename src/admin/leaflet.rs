//! The explanation leaflet (傷病者用説明書): the printable page a crew hands to a patient or
//! family after viewing under 同意取得困難. The department prints a stock of it
//! (`mynakyukyu-admin leaflet`); it carries the official points (why the data was viewed
//! without consent, that it serves this transport only and stays on no tablet, that
//! Mynaportal shows the viewing, whom to ask) and the department's own contact from
//! `device.toml`, which the signed manifest covers like the rest of the configuration.
//!
//! HTML for A4 (`@page`), rendered with maud: every value from the configuration is escaped
//! by the template, so a contact that holds markup prints as text.

use super::AdminError;
use crate::config::{DepartmentContact, DeviceConfig};
use maud::{DOCTYPE, Markup, html};

/// The leaflet for this department as one self-contained HTML page (A4, Japanese).
pub fn leaflet_html(cfg: &DeviceConfig) -> Result<String, AdminError> {
    let contact = cfg.contact.as_ref().ok_or(AdminError::NoContact)?;
    Ok(page(contact).into_string())
}

const STYLE: &str = "
@page { size: A4; margin: 16mm 18mm; }
html { font-family: 'Noto Sans CJK JP', 'Noto Sans JP', sans-serif; color: #000; }
body { margin: 0; font-size: 12.5pt; line-height: 1.65; }
@media screen { body { max-width: 174mm; margin: 10mm auto; } }
h1 { font-size: 19pt; line-height: 1.35; margin: 0 0 4mm; border-bottom: 1.2mm solid #000; padding-bottom: 2mm; }
h2 { font-size: 13.5pt; margin: 5mm 0 1mm; }
p { margin: 0 0 2mm; }
ul { margin: 0 0 2mm; padding-left: 6mm; }
.lead { font-size: 13.5pt; }
.fill { border: 0.4mm solid #000; padding: 3mm 4mm; margin: 4mm 0; }
.fill td { padding: 1.5mm 2mm; font-size: 12.5pt; }
.fill td.line { border-bottom: 0.3mm solid #000; width: 60%; }
.contact { border: 0.8mm solid #000; padding: 3mm 4mm; margin-top: 5mm; font-size: 14pt; }
.contact .phone { font-size: 20pt; font-weight: 700; }
.small { font-size: 10pt; color: #333; }
";

fn page(contact: &DepartmentContact) -> Markup {
    html! {
        (DOCTYPE)
        html lang="ja" {
            head {
                meta charset="utf-8";
                title { "救急隊による医療情報の閲覧について（ご説明）" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                h1 { "救急隊によるマイナ保険証を活用した医療情報の閲覧について（ご説明）" }
                p.lead {
                    "救急隊は、傷病者の方が意識障害などのため同意をいただくことが困難であったため、"
                    "適切な救急活動（搬送先医療機関の選定や応急処置など）を行う目的に限り、"
                    "マイナ保険証を用いて医療情報を閲覧しました。"
                }
                h2 { "閲覧した情報" }
                ul {
                    li { "資格情報（氏名・生年月日・保険者など）" }
                    li { "救急用サマリー・全量版（受診歴、薬剤情報、手術情報、診療情報、透析、特定健診の実施日など）" }
                }
                h2 { "情報の取扱い" }
                ul {
                    li { "閲覧した情報は、今回の救急活動（搬送）のためだけに使用します。" }
                    li { "医療情報は救急隊の端末に保存しません。閲覧の終了とともに端末から消去しています。" }
                    li { "「いつ・どの救急隊が閲覧したか」の記録は、定められた期間保存されます。" }
                    li { "閲覧の履歴は、マイナポータルでご確認いただけます。" }
                }
                div.fill {
                    table {
                        tr { td { "閲覧日時" } td.line { "　　　年　　月　　日　　時　　分" } }
                        tr { td { "救急隊" } td.line { "" } }
                    }
                }
                div.contact {
                    p { "このことについてのお問い合わせ" }
                    p { strong { (contact.name.trim()) } }
                    p.phone { "TEL " (contact.phone.trim()) }
                    @if let Some(hours) = &contact.hours {
                        p { "受付: " (hours) }
                    }
                }
                p.small {
                    "ご本人やご家族が閲覧に心あたりのない場合も、上記へお問い合わせください。"
                    "消防本部は閲覧の記録により、いつ・どの救急隊が閲覧したかをお答えします。"
                }
            }
        }
    }
}
