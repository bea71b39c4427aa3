//! The synthetic population's raw material: names and kana, insurers, hospitals and
//! departments, drugs with their classes, procedures and clinical notes. Invented or
//! generic; no real person's data.

use super::*;

pub(super) const SURNAMES: [(&str, &str); 24] = [
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山田", "ヤマダ"),
    ("佐々木", "ササキ"),
    ("山口", "ヤマグチ"),
    ("松本", "マツモト"),
    ("井上", "イノウエ"),
    ("木村", "キムラ"),
    ("林", "ハヤシ"),
    ("斎藤", "サイトウ"),
    ("清水", "シミズ"),
    ("山崎", "ヤマザキ"),
    ("森", "モリ"),
    ("池田", "イケダ"),
    ("橋本", "ハシモト"),
];

pub(super) const MALE_NAMES: [(&str, &str); 12] = [
    ("太郎", "タロウ"),
    ("健一", "ケンイチ"),
    ("誠", "マコト"),
    ("大輔", "ダイスケ"),
    ("翔太", "ショウタ"),
    ("浩二", "コウジ"),
    ("博", "ヒロシ"),
    ("茂", "シゲル"),
    ("蓮", "レン"),
    ("悠真", "ユウマ"),
    ("勇", "イサム"),
    ("和夫", "カズオ"),
];

pub(super) const FEMALE_NAMES: [(&str, &str); 12] = [
    ("花子", "ハナコ"),
    ("陽子", "ヨウコ"),
    ("恵子", "ケイコ"),
    ("美咲", "ミサキ"),
    ("由美", "ユミ"),
    ("幸子", "サチコ"),
    ("結衣", "ユイ"),
    ("さくら", "サクラ"),
    ("和子", "カズコ"),
    ("直美", "ナオミ"),
    ("葵", "アオイ"),
    ("トメ", "トメ"),
];

pub(super) const INSURERS: [(&str, &str); 6] = [
    ("全国健康保険協会 東京支部", "01130012"),
    ("○○区国民健康保険", "138115"),
    ("東京都後期高齢者医療広域連合", "39131014"),
    ("関東電機健康保険組合", "06139876"),
    ("○○市国民健康保険", "138214"),
    ("神奈川県後期高齢者医療広域連合", "39141013"),
];

pub(super) const HOSPITALS: [&str; 8] = [
    "都立中央総合病院",
    "さくら内科クリニック",
    "みなと循環器病院",
    "東都大学医学部附属病院",
    "あおば整形外科",
    "市民病院",
    "ひまわり小児科",
    "かもめ産婦人科医院",
];

pub(super) const DEPARTMENTS: [&str; 7] = [
    "内科",
    "循環器内科",
    "整形外科",
    "脳神経外科",
    "消化器内科",
    "糖尿病内科",
    "腎臓内科",
];

/// Drugs the simulator dispenses, with the classes the crew acts on.
pub static DRUGS: [Drug; 16] = [
    Drug {
        name: "ワーファリン錠1mg",
        class: DrugClass::Anticoagulant,
        dose: "1日1回 3錠",
    },
    Drug {
        name: "エリキュース錠5mg",
        class: DrugClass::Anticoagulant,
        dose: "1日2回 1錠",
    },
    Drug {
        name: "リクシアナ錠30mg",
        class: DrugClass::Anticoagulant,
        dose: "1日1回 1錠",
    },
    Drug {
        name: "バイアスピリン錠100mg",
        class: DrugClass::Antiplatelet,
        dose: "1日1回 1錠",
    },
    Drug {
        name: "クロピドグレル錠75mg",
        class: DrugClass::Antiplatelet,
        dose: "1日1回 1錠",
    },
    Drug {
        name: "ノボラピッド注フレックスペン",
        class: DrugClass::Insulin,
        dose: "毎食直前 6単位",
    },
    Drug {
        name: "トレシーバ注フレックスタッチ",
        class: DrugClass::Insulin,
        dose: "1日1回 12単位",
    },
    Drug {
        name: "メトホルミン塩酸塩錠250mg",
        class: DrugClass::OralAntidiabetic,
        dose: "1日2回 2錠",
    },
    Drug {
        name: "ジャヌビア錠50mg",
        class: DrugClass::OralAntidiabetic,
        dose: "1日1回 1錠",
    },
    Drug {
        name: "デパケンR錠200mg",
        class: DrugClass::Antiepileptic,
        dose: "1日2回 2錠",
    },
    Drug {
        name: "イーケプラ錠500mg",
        class: DrugClass::Antiepileptic,
        dose: "1日2回 1錠",
    },
    Drug {
        name: "アムロジピン錠5mg",
        class: DrugClass::Other,
        dose: "1日1回 1錠",
    },
    Drug {
        name: "ロスバスタチン錠2.5mg",
        class: DrugClass::Other,
        dose: "1日1回 1錠",
    },
    Drug {
        name: "ランソプラゾールOD錠15mg",
        class: DrugClass::Other,
        dose: "1日1回 1錠",
    },
    Drug {
        name: "カロナール錠200mg",
        class: DrugClass::Other,
        dose: "頓用 2錠",
    },
    Drug {
        name: "葉酸錠5mg",
        class: DrugClass::Other,
        dose: "1日1回 1錠",
    },
];

pub(super) const SURGERIES: [&str; 5] = [
    "経皮的冠動脈ステント留置術",
    "人工股関節置換術",
    "腹腔鏡下胆嚢摘出術",
    "白内障手術（水晶体再建術）",
    "内シャント造設術",
];

pub(super) const CLINICAL: [&str; 5] = [
    "心電図検査",
    "頭部CT撮影",
    "血液検査（HbA1c）",
    "胸部エックス線撮影",
    "点滴注射",
];
