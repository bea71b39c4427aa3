//! The inbox in a real browser: Debian's chromium driven over chromedriver (WebDriver) by
//! fantoccini. A nurse signs in with password and TOTP, a tablet's request appears without
//! a reload and sounds, she answers 受入可 and the tablet hears it; after 搬送決定 the
//! packet shows, an ETA update is highlighted, and the case is gone from the page of the
//! hospital that was not chosen. Screenshots of each step go to `$MYNA_HUB_SHOTS`
//! (scripts/test: docs/screenshots/hub) or a temp dir.

use super::*;
use common::chromium::Chromium;
use fantoccini::{Client, Locator};
use mynakyukyu::handoff::{Answer, Change};

fn shots_dir() -> std::path::PathBuf {
    match std::env::var_os("MYNA_HUB_SHOTS") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join("mynakyukyu-hub-shots"),
    }
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let dir = shots_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn sign_in(fx: &HubFixture, b: &Chromium, login: &str) {
    b.sign_in(fx.hub().inbox_addr.port(), login, PASSWORD, &fx.code(login))
        .await;
}

async fn wait_css(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
}

async fn js(c: &Client, script: &str) -> serde_json::Value {
    c.execute(script, vec![]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nurse_signs_in_hears_a_request_answers_it_and_sees_the_packet() {
    let mut fx = HubFixture::start().await;
    let Some(nurse) = Chromium::start().await else {
        return;
    };
    let Some(other) = Chromium::start().await else {
        return;
    };
    let Some(not_asked) = Chromium::start().await else {
        return;
    };
    let (c, c2) = (&nurse.client, &other.client);
    let base = format!("https://localhost:{}", fx.hub().inbox_addr.port());

    c.goto(&format!("{base}/sign-in")).await.unwrap();
    shot(c, "hub-01-sign-in").await;
    sign_in(&fx, &nurse, "er1").await;
    sign_in(&fx, &other, "er2").await;
    let c3 = &not_asked.client;
    sign_in(&fx, &not_asked, "er3").await;
    assert!(
        js(c, "return document.getElementById('empty') !== null")
            .await
            .as_bool()
            .unwrap()
    );
    // a marker that a reload would wipe
    js(c, "window.__still_this_page = true; return 0").await;

    // the tablet asks H1 and H2: the row appears on both pages without a reload, flashing,
    // and the page sounds
    let tablet = fx.tablet("unit");
    let id = tablet.ask(&ask(&["H1", "H2"])).await.unwrap().case_id;
    let mut events = tablet.events(&id, None).await.unwrap();
    wait_css(c, &format!("section[data-case='{id}'][data-unacked]")).await;
    wait_css(c2, &format!("section[data-case='{id}']")).await;
    assert_eq!(
        js(c, "return window.__still_this_page === true").await,
        true,
        "the page was not reloaded"
    );
    assert_eq!(js(c, "return document.body.dataset.alert").await, "on");
    let beeps = js(c, "return Number(document.body.dataset.beeps || 0)")
        .await
        .as_i64()
        .unwrap();
    assert!(beeps >= 1, "the page sounded");
    let flashing = js(
        c,
        &format!("return getComputedStyle(document.getElementById('case-{id}')).animationName"),
    )
    .await;
    assert_eq!(flashing, "flash");
    shot(c, "hub-02-request-arrives").await;
    // H3 was not asked: its page, connected all along, stays quiet and shows nothing
    let page3 = c3.source().await.unwrap();
    assert!(
        !page3.contains(&id) && !page3.contains("意識障害"),
        "{page3}"
    );
    assert_eq!(js(c3, "return document.body.dataset.alert").await, "off");
    assert_eq!(
        js(c3, "return document.body.dataset.lastEvent === undefined").await,
        true,
        "no event reached the hospital not asked"
    );
    assert_eq!(
        js(c3, "return document.body.dataset.beeps === undefined").await,
        true
    );
    shot(c3, "hub-02b-hospital-not-asked").await;

    // 受入可, a finger-sized button
    let accept = c
        .find(Locator::Css(&format!(
            "section[data-case='{id}'] button[data-action='accept']"
        )))
        .await
        .unwrap();
    let size = js(c, &format!("const r = document.querySelector(\"section[data-case='{id}'] button[data-action='accept']\").getBoundingClientRect(); return [r.width, r.height]")).await;
    assert!(
        size[0].as_f64().unwrap() >= 150.0 && size[1].as_f64().unwrap() >= 64.0,
        "{size}"
    );
    accept.click().await.unwrap();
    wait_css(c, "p.mine").await;
    assert_eq!(
        js(c, "return document.body.dataset.alert").await,
        "off",
        "answered: quiet"
    );
    let (_, view) = tokio::time::timeout(Duration::from_secs(10), events.next_view())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        view.candidates[0].answer.as_ref().unwrap().answer,
        Answer::Accept
    );
    assert_eq!(view.candidates[0].answer.as_ref().unwrap().by, "er1");
    shot(c, "hub-03-accepted").await;

    // 搬送決定: H1 sees the packet; H2's row goes away without a reload
    js(c2, "window.__still_this_page = true; return 0").await;
    tablet.decide(&id, &decide("H1")).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::XPath("//*[contains(text(), '山田花子')]"))
        .await
        .unwrap();
    assert_eq!(
        js(c, "return document.body.dataset.alert").await,
        "on",
        "a new packet version to acknowledge"
    );
    shot(c, "hub-04-packet").await;
    let closed = wait_css(c2, ".closed-case").await;
    assert!(closed.text().await.unwrap().contains("他院へ搬送決定"));
    assert_eq!(
        js(c2, "return window.__still_this_page === true").await,
        true
    );
    let page2 = c2.source().await.unwrap();
    assert!(!page2.contains(&id) && !page2.contains("山田"));
    shot(c2, "hub-05-other-hospital-after-decision").await;

    // an ETA update is highlighted until acknowledged
    tablet
        .update(&id, &Change::Eta { minutes: 5 })
        .await
        .unwrap();
    let changed = wait_css(c, ".changed[data-change-version='2']").await;
    let bg = js(
        c,
        "return getComputedStyle(document.querySelector('.changed')).backgroundColor",
    )
    .await;
    assert_ne!(bg, "rgba(0, 0, 0, 0)", "the update is highlighted");
    assert!(changed.text().await.unwrap().contains("約5分"));
    let countdown = js(
        c,
        "return document.querySelector('[data-eta-ms]').textContent",
    )
    .await;
    assert!(
        countdown.as_str().unwrap().starts_with("あと"),
        "{countdown}"
    );
    shot(c, "hub-06-eta-update-highlighted").await;
    c.find(Locator::Css("button[data-action='ack']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::XPath("//*[contains(text(), 'まで確認済み')]"))
        .await
        .unwrap();
    assert_eq!(tablet.case(&id).await.unwrap().acknowledged, 2);
    shot(c, "hub-07-acknowledged").await;

    nurse.client.clone().close().await.unwrap();
    other.client.clone().close().await.unwrap();
    not_asked.client.clone().close().await.unwrap();
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_loses_its_stream_reconnects_and_misses_nothing() {
    let mut fx = HubFixture::start().await;
    let Some(b) = Chromium::start().await else {
        return;
    };
    let c = &b.client;
    sign_in(&fx, &b, "er1").await;
    js(c, "window.__still_this_page = true; return 0").await;
    let first = fx.tablet("unit").ask(&ask(&["H1"])).await.unwrap().case_id;
    wait_css(c, &format!("section[data-case='{first}']")).await;
    let seen = js(c, "return Number(document.body.dataset.lastEvent)")
        .await
        .as_i64()
        .unwrap();
    // the hub stops (a restart, a deploy); two requests arrive while it is away from the
    // page: both are stored before the page can reconnect
    fx.pin_ports();
    fx.stop().await;
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("body[data-connected='0']"))
        .await
        .unwrap();
    fx.hub = Some(Hub::start(fx.options.clone()).await.unwrap());
    let tablet = fx.tablet("unit");
    let second = tablet.ask(&ask(&["H1"])).await.unwrap().case_id;
    let third = tablet.ask(&ask(&["H1"])).await.unwrap().case_id;
    // the page reconnects by itself, resumes after the last event it saw, and shows both
    for id in [&second, &third] {
        c.wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(&format!("section[data-case='{id}']")))
            .await
            .unwrap_or_else(|e| panic!("case {id} never appeared after the reconnect: {e}"));
    }
    assert_eq!(
        js(c, "return window.__still_this_page === true").await,
        true,
        "no reload"
    );
    let last = js(c, "return Number(document.body.dataset.lastEvent)")
        .await
        .as_i64()
        .unwrap();
    assert!(last > seen, "{last} after {seen}");
    shot(c, "hub-08-after-reconnect").await;
    common::reliability_row(
        "hub-page-reconnect",
        "Faults",
        "an inbox page in chromium whose hub stopped and came back while two requests arrived",
        1,
        0,
        "the page reconnected by itself and showed both requests without a reload",
    );
    b.client.clone().close().await.unwrap();
    fx.stop().await;
}
