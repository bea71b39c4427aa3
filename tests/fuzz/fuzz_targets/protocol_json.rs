//! Protocol v2 bodies from the other end of the line (HTTP itself is hyper's): the answers
//! the tablet reads and the requests the simulator reads. A body either decodes into its
//! type or is refused; what decodes encodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mynakyukyu::eligibility::wire;

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        serde_json::to_vec(&v).expect("what decodes encodes");
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<wire::Health>(data);
    round_trip::<wire::QualificationResponse>(data);
    round_trip::<wire::EmergencyInfoResponse>(data);
    round_trip::<wire::RecordsAccepted>(data);
    round_trip::<wire::RecordsHead>(data);
    round_trip::<wire::Problem>(data);
    round_trip::<wire::QualificationRequest>(data);
    round_trip::<wire::EmergencyInfoRequest>(data);
    round_trip::<wire::RecordsUpload>(data);
});
