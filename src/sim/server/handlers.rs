//! The protocol's calls as the simulator answers them (docs/PROTOCOL.md): health,
//! qualification, emergency info (with the swap fault), the records chain and its head,
//! and the simulator's own fault switch; RFC 9457 problems.

use super::*;

/// A JSON request body, as the handlers take it: one that does not parse is answered with
/// a `400 bad-request` problem naming the error's kind and place (never the value it
/// rejected), whatever its content type (the tablets send `application/json`).
pub(super) struct JsonBody<T>(pub(super) T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| bad_request(crate::domain::json_error_text(&e)))
    }
}

pub(super) fn problem_response(p: &Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(p).unwrap_or_default();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(wire::PROBLEM_JSON),
        )],
        body,
    )
        .into_response()
}

/// The fault `swap_emergency_bodies`: meet another inquiry in flight (up to 3 s) and
/// answer with its body; alone, answer with one's own.
pub(super) async fn swapped(shared: &Shared, mine: wire::EmergencyInfoResponse) -> Response {
    let partner = lock(&shared.swap_slot).take();
    match partner {
        Some((theirs, tx)) => {
            let _ = tx.send(mine);
            ok(&theirs)
        }
        None => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            *lock(&shared.swap_slot) = Some((mine.clone(), tx));
            match tokio::time::timeout(std::time::Duration::from_secs(3), rx).await {
                Ok(Ok(theirs)) => ok(&theirs),
                _ => {
                    lock(&shared.swap_slot).take();
                    ok(&mine)
                }
            }
        }
    }
}

pub(super) fn ok<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => problem_response(&Problem::new(
            problem::BAD_REQUEST,
            "Cannot encode answer",
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(e.to_string()),
        )),
    }
}

pub(super) fn bad_request(detail: String) -> Response {
    problem_response(&Problem::new(
        problem::BAD_REQUEST,
        "Malformed request",
        StatusCode::BAD_REQUEST,
        Some(detail),
    ))
}

/// A body that names a unit other than the certificate's: refused (the tablet's word
/// must match its certificate).
pub(super) fn unit_mismatch(claimed: &UnitId, certified: &UnitId) -> Response {
    tracing::warn!(claimed = %claimed.as_str(), certified = %certified.as_str(),
        "request refused: the body names another unit than the client certificate");
    problem_response(&Problem::new(
        problem::UNIT_MISMATCH,
        "The request names another unit than the client certificate",
        StatusCode::FORBIDDEN,
        None,
    ))
}

pub(super) async fn health() -> Response {
    ok(&wire::Health {
        status: "ok".into(),
        version: wire::API_VERSION.into(),
    })
}

pub(super) async fn qualification(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<Arc<Connection>>,
    JsonBody(req): JsonBody<wire::QualificationRequest>,
) -> Response {
    if req.unit_id != connection.unit {
        return unit_mismatch(&req.unit_id, &connection.unit);
    }
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(&req.auth_certificate) else {
        return bad_request("auth_certificate is not base64".into());
    };
    let answer = lock(&shared.sim).qualification(
        &connection.unit,
        &CardCredential {
            auth_certificate_der: der,
            token: Default::default(),
        },
        Timestamp::now(),
    );
    match answer {
        QualificationAnswer::Coverage {
            qualification,
            coverage,
        } => ok(&wire::QualificationResponse::Coverage {
            qualification_ref: qualification,
            coverage,
        }),
        QualificationAnswer::OptOut => ok(&wire::QualificationResponse::OptOut),
        QualificationAnswer::CardNotAccepted(why) => {
            let (kind, title) = match why {
                CardRejection::Unknown => (problem::CARD_UNKNOWN, "Card certificate unknown"),
                CardRejection::Revoked => (problem::CARD_REVOKED, "Card certificate revoked"),
                CardRejection::Expired => (problem::CARD_EXPIRED, "Card certificate expired"),
            };
            problem_response(&Problem::new(
                kind,
                title,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
            ))
        }
        QualificationAnswer::RateLimited => problem_response(&Problem::new(
            problem::TOO_MANY_PATIENTS,
            "This unit asked for an unusual number of patients; refused and flagged",
            StatusCode::TOO_MANY_REQUESTS,
            None,
        )),
        QualificationAnswer::Unavailable => problem_response(&Problem::new(
            problem::UNAVAILABLE,
            "Cannot issue a reference now",
            StatusCode::SERVICE_UNAVAILABLE,
            None,
        )),
    }
}

pub(super) async fn emergency_info(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<Arc<Connection>>,
    JsonBody(req): JsonBody<wire::EmergencyInfoRequest>,
) -> Response {
    if req.unit_id != connection.unit {
        return unit_mismatch(&req.unit_id, &connection.unit);
    }
    let signature = match req
        .card_signature
        .as_deref()
        .map(|s| base64::engine::general_purpose::STANDARD.decode(s))
    {
        None => None,
        Some(Ok(sig)) => Some(sig),
        Some(Err(_)) => return bad_request("card_signature is not base64".into()),
    };
    let at = Timestamp::now();
    let result = {
        let mut sim = lock(&shared.sim);
        let patient = sim.patient_for(&req.qualification_ref);
        let r = sim.emergency_info(
            at,
            InquiryFields {
                incident: &req.incident_id,
                qualification: &req.qualification_ref,
                consent: req.consent,
                operator: &req.operator_id,
                unit: &connection.unit,
                terminal: &req.terminal_id,
                identity_check: req.identity_check,
                card_signature: signature.as_deref(),
                token: req.token,
            },
        );
        let logged = sim.audit_log().last().cloned();
        (r.map(|info| (info, patient)), logged)
    };
    match result {
        (Ok((info, patient)), logged) => {
            if let (Some(file), Some(entry)) = (&shared.audit_file, logged)
                && entry.incident == req.incident_id
                && let Ok(mut line) = serde_json::to_vec(&entry)
            {
                line.push(b'\n');
                let _ = lock(file).write_all(&line);
            }
            let answer = wire::EmergencyInfoResponse {
                qualification_ref: Some(req.qualification_ref.clone()),
                patient,
                emergency_summary: info.summary,
                full_data: info.full,
            };
            if lock(&shared.faults).swap_emergency_bodies {
                return swapped(&shared, answer).await;
            }
            ok(&answer)
        }
        (Err(InquiryRefusal::UnknownQualification), _) => problem_response(&Problem::new(
            problem::UNKNOWN_QUALIFICATION,
            "Unknown qualification reference",
            StatusCode::NOT_FOUND,
            None,
        )),
        (Err(InquiryRefusal::ExpiredQualification), _) => problem_response(&Problem::new(
            problem::QUALIFICATION_EXPIRED,
            "Qualification reference expired; read the card again",
            StatusCode::GONE,
            None,
        )),
        (Err(InquiryRefusal::CardSignatureInvalid), _) => problem_response(&Problem::new(
            problem::CARD_SIGNATURE_INVALID,
            "PIN path: the card's signature is missing or does not verify",
            StatusCode::FORBIDDEN,
            None,
        )),
        (Err(InquiryRefusal::PhoneWithoutOwner), _) => problem_response(&Problem::new(
            problem::PHONE_WITHOUT_OWNER,
            "A phone is read only with its owner: no 同意取得困難 and no photo check with it",
            StatusCode::FORBIDDEN,
            None,
        )),
        (Err(InquiryRefusal::ForeignUnit), _) => problem_response(&Problem::new(
            problem::FOREIGN_UNIT,
            "Qualification reference issued to another unit",
            StatusCode::FORBIDDEN,
            None,
        )),
    }
}

pub(super) async fn records_head(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<Arc<Connection>>,
) -> Response {
    let head = lock(&shared.chains)
        .get(&connection.key_id)
        .and_then(HeldChain::head);
    ok(&wire::RecordsHead { head })
}

/// Why a batch of records was refused.
pub(super) fn chain_refusal(
    kind: &str,
    status: StatusCode,
    title: &str,
    detail: String,
) -> Response {
    tracing::warn!(kind, detail = %detail, "records refused");
    problem_response(&Problem::new(kind, title, status, Some(detail)))
}

/// Hold the tablet to its chain: each record signed by the key that connected, its hash
/// over its content and link, its link to the record before; a sequence number held
/// with another hash (a rolled-back or forked store) or a gap refuses the whole batch,
/// so nothing is half-taken.
pub(super) async fn records(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<Arc<Connection>>,
    JsonBody(req): JsonBody<wire::RecordsUpload>,
) -> Response {
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        connection.device_key.as_slice(),
    );
    let mut chains = lock(&shared.chains);
    let chain = chains.entry(connection.key_id.clone()).or_default();
    let mut fresh: Vec<&ChainedRecord> = vec![];
    let mut duplicates = 0;
    let mut prev: Option<(u64, String)> = chain.head().map(|h| (h.seq, h.hash));
    for r in &req.records {
        let signature_ok = base64::engine::general_purpose::STANDARD
            .decode(&r.signature)
            .is_ok_and(|sig| {
                key.verify(&crate::domain::chain_signing_message(r.seq, &r.hash), &sig)
                    .is_ok()
            });
        let content_ok =
            crate::domain::check_link(None, None, r.seq, &r.prev_hash, &r.record, &r.hash).is_ok();
        if !signature_ok || !content_ok {
            return chain_refusal(
                problem::BAD_RECORD_SIGNATURE,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Record signature or hash does not verify",
                format!("unit {} record {}", connection.unit.as_str(), r.seq),
            );
        }
        if let Some(held) = chain.records.get(&r.seq) {
            if held.hash == r.hash {
                duplicates += 1;
                continue;
            }
            return chain_refusal(
                problem::CHAIN_CONFLICT,
                StatusCode::CONFLICT,
                "The server holds another record at this place of the chain",
                format!(
                    "unit {} record {}: held head {}",
                    connection.unit.as_str(),
                    r.seq,
                    chain.head().map(|h| h.seq).unwrap_or_default()
                ),
            );
        }
        // the first record ever held may start anywhere (older ones purged before the
        // server knew this key); after that, each one links to the one before
        if let Some((seq, hash)) = &prev {
            match crate::domain::check_link(
                Some(*seq),
                Some(hash),
                r.seq,
                &r.prev_hash,
                &r.record,
                &r.hash,
            ) {
                Ok(()) => {}
                Err(crate::domain::LinkFault::Gap) => {
                    return chain_refusal(
                        problem::CHAIN_GAP,
                        StatusCode::CONFLICT,
                        "Records are missing before this one",
                        format!(
                            "unit {} record {} after held {}",
                            connection.unit.as_str(),
                            r.seq,
                            seq
                        ),
                    );
                }
                Err(_) => {
                    return chain_refusal(
                        problem::CHAIN_CONFLICT,
                        StatusCode::CONFLICT,
                        "The record does not link to the chain the server holds",
                        format!("unit {} record {}", connection.unit.as_str(), r.seq),
                    );
                }
            }
        }
        prev = Some((r.seq, r.hash.clone()));
        fresh.push(r);
    }
    let accepted = fresh.len();
    let mut held = lock(&shared.records);
    for r in fresh {
        chain.records.insert(r.seq, r.clone());
        held.insert(
            (connection.key_id.clone(), r.record.id.clone()),
            r.record.clone(),
        );
    }
    let Some(head) = chain.head() else {
        return bad_request("an empty batch".into());
    };
    ok(&wire::RecordsAccepted {
        accepted,
        duplicates,
        head,
    })
}

pub(super) async fn set_faults(
    State(shared): State<Arc<Shared>>,
    JsonBody(f): JsonBody<Faults>,
) -> Response {
    *lock(&shared.faults) = f.clone();
    ok(&f)
}
