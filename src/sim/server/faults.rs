//! Faults injected around every answer (latency, 503s, replaying the previous answer) and
//! the ids echoed: the road and the broken gateways a tablet must survive.

use super::*;

/// Every answer names its question: the request's `request-id` and `incident-id` are
/// echoed. The drill faults (latency, stall, reset, 503, replaying the previous answer)
/// act here, before and instead of the handlers.
pub(super) async fn faults_and_echo(
    State((shared, mut stopped)): State<(Arc<Shared>, watch::Receiver<bool>)>,
    Extension(connection): Extension<Arc<Connection>>,
    req: Request,
    next: Next,
) -> Response {
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let echo: Vec<(header::HeaderName, HeaderValue)> =
        [wire::HEADER_REQUEST_ID, wire::HEADER_INCIDENT_ID]
            .into_iter()
            .filter_map(|name| {
                let value = req.headers().get(name)?.clone();
                Some((header::HeaderName::from_static(name), value))
            })
            .collect();
    let faults = lock(&shared.faults).clone();
    if faults.stall {
        // Accept the request and never answer, until the client gives up or we stop.
        let _ = stopped.changed().await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if chance(faults.reset_rate) {
        connection.reset.notify_one();
        std::future::pending::<()>().await;
    }
    if faults.replay_previous {
        let previous = lock(&connection.previous).clone();
        if let Some((status, headers, body)) = previous {
            // a broken proxy: the previous answer, as it was, to this question
            let mut r = (status, body).into_response();
            *r.headers_mut() = headers;
            return r;
        }
    }
    let response = if chance(faults.error_rate) {
        problem_response(&Problem::new(
            problem::UNAVAILABLE,
            "Service temporarily unavailable (injected)",
            StatusCode::SERVICE_UNAVAILABLE,
            None,
        ))
    } else {
        match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
            Ok(r) => r,
            Err(_) => problem_response(&Problem::new(
                problem::UNAVAILABLE,
                "Request timed out",
                StatusCode::SERVICE_UNAVAILABLE,
                None,
            )),
        }
    };
    let (mut parts, body) = response.into_parts();
    for (name, value) in echo {
        parts.headers.insert(name, value);
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_REQUEST_BYTES * 2).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    *lock(&connection.previous) = Some((parts.status, parts.headers.clone(), body.clone()));
    Response::from_parts(parts, axum::body::Body::from(body))
}
