//! The client's own tests: parsing, problem mapping, log-safe errors.

use super::*;

#[test]
fn a_malformed_answer_is_an_error_that_quotes_none_of_its_values() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    enum Class {
        Anticoagulant,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Shape {
        days: u32,
        class: Class,
    }
    let drug = "【抗凝固薬】ワーファリン錠1mg";
    for body in [
        format!(r#"{{"days": "{drug}", "class": "Anticoagulant"}}"#),
        format!(r#"{{"days": 28, "class": "{drug}"}}"#),
        format!(r#"{{"days": 28, "class": "Anticoagulant", "note": "{drug}"#),
    ] {
        // serde_json's own message quotes the value (what reached the journal before)
        let raw = serde_json::from_slice::<Shape>(body.as_bytes()).unwrap_err();
        assert!(
            raw.to_string().contains("ワーファリン") || raw.is_eof(),
            "{raw}"
        );
        let answer = Answer {
            status: 200,
            body: body.into_bytes(),
        };
        let e = decode::<Shape>(&answer).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(matches!(e, ClientError::Protocol(_)), "{text}");
        assert!(
            !text.contains("ワーファリン") && !text.contains("抗凝固"),
            "{text}"
        );
        assert!(text.contains("line 1 column"), "{text}");
    }
}

#[test]
fn endpoints_parse_or_fail_clearly() {
    assert_eq!(
        Endpoint::parse("https://localhost:8443").unwrap(),
        Endpoint {
            host: "localhost".into(),
            port: 8443
        }
    );
    assert_eq!(Endpoint::parse("https://[::1]:9/v1").unwrap().host, "::1");
    assert_eq!(Endpoint::parse("https://example.test").unwrap().port, 443);
    for bad in ["http://x:1", "https://:1", "https://x:notaport", "x"] {
        assert!(
            matches!(Endpoint::parse(bad), Err(ClientError::BadEndpoint(_))),
            "{bad}"
        );
    }
}

#[test]
fn problems_map_to_typed_errors() {
    let answer = |status, kind: &str| Answer {
        status,
        body: serde_json::to_vec(&Problem::new(
            kind,
            "t",
            http::StatusCode::from_u16(status).unwrap(),
            None,
        ))
        .unwrap(),
    };
    assert!(matches!(
        classify(answer(422, problem::CARD_REVOKED)),
        Err(ClientError::CardNotAccepted(CardProblem::Revoked))
    ));
    assert!(matches!(
        classify(answer(404, problem::NO_COVERAGE)),
        Err(ClientError::NoCoverage)
    ));
    assert!(matches!(
        classify(answer(400, problem::BAD_REQUEST)),
        Err(ClientError::Refused(_))
    ));
    assert!(matches!(
        classify(Answer {
            status: 503,
            body: vec![]
        }),
        Err(ClientError::Unavailable(503))
    ));
    assert!(matches!(
        classify(Answer {
            status: 418,
            body: b"<html>".to_vec()
        }),
        Err(ClientError::Protocol(_))
    ));
}
