//! Mynakyukyu (マイナ救急): read a patient's My Number health-insurance card in an
//! ambulance, check the patient's coverage, record consent, and show the emergency summary.
//!
//! # Module map
//!
//! The flow runs card → session → eligibility → store/sync, with the UI on top. Modules
//! only depend downwards (tests/layering.rs checks the imports against the map in
//! docs/ARCHITECTURE.md); the session state machine depends on nothing but [`domain`].
//!
//! | module | owns |
//! |---|---|
//! | [`domain`] | the shared vocabulary (glossary types): coverage, emergency info, consent, audit entries; redacted `Debug` for anything sensitive |
//! | [`session`] | the incident flow as a pure state machine: events in, screen phase and effects out; the rules from the official documents |
//! | [`pki`] | certificates: issuing with rcgen (development PKI, test JPKI CA, card certificates), reading with x509-parser (serial, issuer, validity, signatures) |
//! | [`eligibility`] | protocol v2: wire types and the mutual-TLS client (rustls, TLS 1.3, pinned CA; HTTP/1.1 through hyper, keep-alive, resumption, retries with backon, answers checked against their request and incident ids) |
//! | [`sim`] | the eligibility simulator: synthetic patients, virtual cards issued to them, qualification and emergency-info answers (random, expiring, unit-bound references), and its axum mTLS server holding each device key's signed audit chain, with fault injection |
//! | [`drill`] | training drills: scenario files, the training world (simulator on loopback, virtual reader), the runner over the app controller, the debrief |
//! | [`card`] | the patient's card (or a phone's スマホ用電子証明書, told apart by EF 0006): apdu → transport (pcscd or the in-process virtual card) → JPKI |
//! | [`keys`] | the device keys: the unit key, the store key and the file-integrity key in the TPM 2.0 (PKCS#11 via cryptoki and tpm2-pkcs11) or, for training and `--allow-file-keys`, in 0600 files; the signed manifest of the data dir's configuration files |
//! | [`store`] | sled, sealed records, hash chain, outbox; no clinical data |
//! | [`sync`] | the uploader: outbox → eligibility system as a signed chain; rollback detection |
//! | [`roster`] | crew roster, Argon2id PINs, sign-in lockout |
//! | [`config`] | the device configuration and data-dir file names |
//! | [`app`] | the controller: session + effects off its loop on tokio (outcomes come back as events), the view model, readers, the line |
//! | [`ui`] | Slint: view model → `Api` global, callbacks → commands behind the tap guard, headless PNG rendering |
//! | [`admin`] | fire-department administration behind `mynakyukyu-admin`; the audit answer (export, bundle, merge) |
//! | [`cli`] | what every binary shares: `--data-dir`, `--log-format`, logging set-up, the package's `/etc` settings |
//! | [`files`] | the data dir's private atomic write (0600, `O_NOFOLLOW`, sync, rename) |
//! | [`kernel_route`] | which way the kernel routes an address (the tunnel or not), over rtnetlink |
//! | [`handoff`] | the hand-off to the receiving hospital as a pure state machine: what a request may disclose, answers, 搬送決定, versions (protocol h1) |
//! | [`hub`] | the hand-off hub (`mynakyukyu-hub`): cases sealed in SQLite, the tablet API over mutual TLS, the hospitals' inbox page (password + TOTP, CSRF, SSE), retention; and the tablet's client of it |
//! | [`upkeep`] | what needs the admin before it stops the tablet: the server CRL's next update, the unit certificate's end, records unsynced too long |
//!
//! The binaries are thin: `src/bin/mynakyukyu.rs` (the tablet app),
//! `src/bin/mynakyukyu-admin.rs` (provisioning), `src/bin/mynakyukyu-sim.rs` (the
//! simulator) and `src/bin/mynakyukyu-hub.rs` (the hand-off hub). docs/ARCHITECTURE.md has the whole picture.

pub mod admin;
pub mod app;
pub mod card;
pub mod cli;
pub mod config;
pub mod domain;
pub mod drill;
pub mod eligibility;
pub mod files;
pub mod handoff;
pub mod hub;
pub mod kernel_route;
pub mod keys;
pub mod pki;
pub mod roster;
pub mod session;
pub mod sim;
pub mod store;
pub mod sync;
#[cfg(feature = "ui")]
pub mod ui;
pub mod upkeep;
