//! Messages the crew sees, each with a plain next step: Japanese on screen, English in logs.

use super::{CardFailure, ServiceFailure};

/// A message shown with the current phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Notice {
    NoViewingPermission,
    LockedAfterIdle,
    ViewingEndedAfterIdle,
    NoReader,
    ReaderServiceDown,
    NotMyNumberCard,
    CardRemovedDuringRead,
    CardUnresponsive,
    ReaderBusy,
    CardCertificateNotValid,
    WaitingForLink,
    CertificateRefused,
    ServerCertificateWrong,
    CardNotAccepted,
    NoCoverage,
    ProtocolError,
    TunnelRequired,
    OptedOut,
    RefusalRecorded,
    PhoneLocked,
    PhoneNeedsItsOwner,
}

impl Notice {
    /// Every notice, for the tests that read every message the crew can see.
    pub const ALL: [Notice; 21] = [
        Notice::NoViewingPermission,
        Notice::LockedAfterIdle,
        Notice::ViewingEndedAfterIdle,
        Notice::NoReader,
        Notice::ReaderServiceDown,
        Notice::NotMyNumberCard,
        Notice::CardRemovedDuringRead,
        Notice::CardUnresponsive,
        Notice::ReaderBusy,
        Notice::CardCertificateNotValid,
        Notice::WaitingForLink,
        Notice::CertificateRefused,
        Notice::ServerCertificateWrong,
        Notice::CardNotAccepted,
        Notice::NoCoverage,
        Notice::ProtocolError,
        Notice::TunnelRequired,
        Notice::OptedOut,
        Notice::RefusalRecorded,
        Notice::PhoneLocked,
        Notice::PhoneNeedsItsOwner,
    ];

    pub fn from_card_failure(failure: CardFailure) -> Self {
        match failure {
            CardFailure::NoReader => Notice::NoReader,
            CardFailure::ReaderServiceDown => Notice::ReaderServiceDown,
            CardFailure::NotMyNumberCard => Notice::NotMyNumberCard,
            CardFailure::RemovedDuringRead => Notice::CardRemovedDuringRead,
            CardFailure::Unresponsive => Notice::CardUnresponsive,
            CardFailure::ReaderBusy => Notice::ReaderBusy,
            CardFailure::CertificateNotValid => Notice::CardCertificateNotValid,
            CardFailure::PhoneLocked => Notice::PhoneLocked,
        }
    }

    pub fn from_service_failure(failure: ServiceFailure) -> Self {
        match failure {
            ServiceFailure::LinkDown | ServiceFailure::Timeout => Notice::WaitingForLink,
            ServiceFailure::CertificateRefused => Notice::CertificateRefused,
            ServiceFailure::ServerCertificateWrong => Notice::ServerCertificateWrong,
            ServiceFailure::CardNotAccepted => Notice::CardNotAccepted,
            ServiceFailure::NoCoverage => Notice::NoCoverage,
            ServiceFailure::Protocol => Notice::ProtocolError,
            ServiceFailure::TunnelRequired => Notice::TunnelRequired,
        }
    }

    /// Whether the crew is offered 「再送」 (the same request again).
    pub fn offers_retry(self) -> bool {
        matches!(
            self,
            Notice::CertificateRefused
                | Notice::ServerCertificateWrong
                | Notice::ProtocolError
                | Notice::TunnelRequired
        )
    }

    /// What happened and what to do, in Japanese, for the screen.
    pub fn message_ja(self) -> &'static str {
        match self {
            Notice::NoViewingPermission => {
                "閲覧権限がありません。消防本部の管理者に登録を依頼してください。"
            }
            Notice::LockedAfterIdle => {
                "操作がなかったためロックしました。再度サインインしてください。"
            }
            Notice::ViewingEndedAfterIdle => {
                "操作がなかったため閲覧を終了し、患者情報を消去しました。"
            }
            Notice::NoReader => {
                "カードリーダーが見つかりません。リーダーの接続を確認してください。"
            }
            Notice::ReaderServiceDown => {
                "カードリーダーのサービスが動いていません。端末を再起動してください。"
            }
            Notice::NotMyNumberCard => {
                "マイナ保険証ではありません。マイナンバーカードを置いてください。"
            }
            Notice::CardRemovedDuringRead => {
                "読み取り中にカードが外れました。もう一度カードを置いてください。"
            }
            Notice::CardUnresponsive => "カードが応答しません。置き直してください。",
            Notice::ReaderBusy => "リーダーが使用中です。少し待ってからもう一度置いてください。",
            Notice::CardCertificateNotValid => {
                "カードの電子証明書が有効期間外です。保険証等で確認してください。"
            }
            Notice::WaitingForLink => {
                "回線が切れています。記録は保存済みです。回線が戻ると自動で再送します。"
            }
            Notice::CertificateRefused => {
                "サーバーが本端末の証明書を拒否しました。管理者に連絡してください。"
            }
            Notice::ServerCertificateWrong => {
                "接続先のサーバー証明書が正しくありません。送信を中止しました。管理者に連絡してください。"
            }
            Notice::CardNotAccepted => {
                "このカードの証明書は失効または無効です。保険証等で確認してください。"
            }
            Notice::NoCoverage => "資格情報が見つかりません。保険証等で確認してください。",
            Notice::ProtocolError => {
                "サーバーの応答が不正です。再送するか、閲覧を終了してください。"
            }
            Notice::TunnelRequired => {
                "専用回線（IPsec）が確立していないため送信しません。回線を確認してください。"
            }
            // The national opt-out method is still undecided (検討する): this is the system's
            // provisional answer, not a rule of ours, and the message says so.
            Notice::OptedOut => {
                "システムの回答: この患者の情報は提供されません（オプトアウト・暫定運用）。表示できる情報はありません。"
            }
            Notice::RefusalRecorded => {
                "拒否を記録しました。情報は閲覧しません。患者情報は画面から消去しました。"
            }
            Notice::PhoneLocked => {
                "iPhoneです。持ち主の方にFace ID / Touch IDで認証してもらい、もう一度かざしてください。"
            }
            Notice::PhoneNeedsItsOwner => {
                "スマートフォンは本人の暗証番号がないと読めません。意識のない方には使えません。終了してください。"
            }
        }
    }

    /// The same in English, for logs and the CLI.
    pub fn message_en(self) -> &'static str {
        match self {
            Notice::NoViewingPermission => "crew member has no viewing permission",
            Notice::LockedAfterIdle => "locked after idle timeout",
            Notice::ViewingEndedAfterIdle => {
                "viewing ended after idle timeout; patient data purged"
            }
            Notice::NoReader => "no card reader found",
            Notice::ReaderServiceDown => "PC/SC service (pcscd) not running",
            Notice::NotMyNumberCard => "not a My Number card (JPKI application not found)",
            Notice::CardRemovedDuringRead => "card removed during the read",
            Notice::CardUnresponsive => "card does not answer",
            Notice::ReaderBusy => "reader busy",
            Notice::CardCertificateNotValid => "card certificate expired or not yet valid",
            Notice::WaitingForLink => "link down; request kept and resent when the link returns",
            Notice::CertificateRefused => "server refused the unit certificate",
            Notice::ServerCertificateWrong => "server certificate is not the provisioned one",
            Notice::CardNotAccepted => "card certificate unknown, revoked or expired",
            Notice::NoCoverage => "no coverage found",
            Notice::ProtocolError => "malformed answer from the server",
            Notice::TunnelRequired => "IPsec tunnel required but down; nothing sent",
            Notice::OptedOut => {
                "the system answered opt-out (provisional protocol answer); nothing to show"
            }
            Notice::RefusalRecorded => "refusal recorded; nothing viewed; patient data cleared",
            Notice::PhoneLocked => {
                "an iPhone its owner has not unlocked: ask the patient to authenticate with Face ID / Touch ID and hold it again"
            }
            Notice::PhoneNeedsItsOwner => {
                "a phone is read only with its owner's PIN; the patient cannot enter it: end the incident"
            }
        }
    }
}
