//! The drill scenarios' own checks.

use super::*;

#[test]
fn every_built_in_scenario_parses() {
    for name in scenario_names() {
        let s = scenario(name).unwrap();
        assert!(!s.steps.is_empty(), "{name}");
        assert_eq!(s.expected_path.first().map(String::as_str), Some("ready"));
    }
    assert!(matches!(
        scenario("nope"),
        Err(DrillError::UnknownScenario(_))
    ));
}
