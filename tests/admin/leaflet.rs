//! The department's contact and the explanation leaflet (傷病者用説明書) as an admin makes
//! them: refused until the contact is set, values checked, markup printed as text, and the
//! contact covered by the signed manifest like the rest of device.toml.

use super::*;

#[test]
fn the_leaflet_carries_the_departments_contact_as_text_and_the_contact_is_signed() {
    let d = TempDir::new("admin-leaflet");
    let data = d.path().join("tablet");
    init(&data);
    // no contact yet: a clear refusal that says what to run
    let o = admin(&data, &["leaflet"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("mynakyukyu-admin contact"),
        "{}",
        text(&o)
    );
    // a phone number that is not one, a name with a line break: refused, nothing written
    for args in [
        ["contact", "--name", "市消防本部", "--phone", "call me"],
        [
            "contact",
            "--name",
            "市消防本部\n=1+1",
            "--phone",
            "03-1234-5678",
        ],
    ] {
        let o = admin(&data, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("contact refused"), "{}", text(&o));
    }
    assert!(
        !std::fs::read_to_string(data.join("device.toml"))
            .unwrap()
            .contains("contact")
    );
    // a name that holds markup is printed as text
    let o = admin(
        &data,
        &[
            "contact",
            "--name",
            "<script>alert(1)</script>みなと市消防本部 警防課",
            "--phone",
            "03-1234-5678",
            "--hours",
            "平日 8:30〜17:15",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let page_path = d.path().join("leaflet.html");
    let o = admin(&data, &["leaflet", "--out", page_path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let page = std::fs::read_to_string(&page_path).unwrap();
    assert!(
        !page.contains("<script>"),
        "markup from the configuration ran"
    );
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;みなと市消防本部 警防課"));
    for point in [
        "size: A4",
        "同意をいただくことが困難",
        "今回の救急活動（搬送）のためだけに使用",
        "端末に保存しません",
        "マイナポータル",
        "お問い合わせ",
        "TEL 03-1234-5678",
        "受付: 平日 8:30〜17:15",
        "閲覧日時",
    ] {
        assert!(page.contains(point), "{point} missing");
    }
    // the contact is part of the signed configuration: edited by hand, the tablet says so
    let o = admin(&data, &["status", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["integrity"], "ok", "{s}");
    let config = std::fs::read_to_string(data.join("device.toml")).unwrap();
    std::fs::write(
        data.join("device.toml"),
        config.replace("03-1234-5678", "0120-000-000"),
    )
    .unwrap();
    let o = admin(&data, &["status", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_ne!(s["integrity"], "ok", "{s}");
    // and a new contact is not signed over the edit
    let o = admin(
        &data,
        &[
            "contact",
            "--name",
            "みなと市消防本部",
            "--phone",
            "03-1234-5678",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
