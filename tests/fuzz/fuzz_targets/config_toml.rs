//! TOML the tablet reads: the device config (`device.toml`), the roster, and a drill
//! scenario file. Each is parsed or refused with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = toml::from_str::<mynakyukyu::config::DeviceConfig>(text);
    let _ = mynakyukyu::roster::Roster::parse(text);
    let _ = mynakyukyu::drill::parse_scenario("fuzz", text);
});
