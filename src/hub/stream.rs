//! Server-sent events from the events table: every event carries its sequence number as
//! its id, so a stream that reconnects with `Last-Event-ID` resumes after the last one it
//! saw (nothing missed, nothing twice). SSE rather than long polling: one request per
//! stream, reconnection and resumption built into every browser's `EventSource`, and the
//! same framing for the tablet.

use super::HubCore;
use super::store::EventRow;
use axum::http::HeaderMap;
use axum::response::sse::Event;
use futures_util::Stream;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// Where a stream starts: after `Last-Event-ID` if the client sent one, else after the
/// newest event now (a new page renders the current state itself).
/// A page whose EventSource gave up and was made anew passes the last id as `?after=`.
pub async fn start_after(core: &HubCore, headers: &HeaderMap, after: Option<i64>) -> i64 {
    match headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(after)
    {
        Some(id) if id >= 0 => id,
        _ => core.store.last_event().await.unwrap_or(0),
    }
}

struct State<F> {
    core: Arc<HubCore>,
    audience: String,
    after: i64,
    wake: broadcast::Receiver<i64>,
    stopped: watch::Receiver<bool>,
    pending: VecDeque<EventRow>,
    render: F,
    done: bool,
}

/// The stream of `audience`'s events after `after`, each rendered by `render` (None skips
/// it; an event whose `kind` is "end" ends the stream after it is sent).
pub fn events<F, Fut>(
    core: Arc<HubCore>,
    audience: String,
    after: i64,
    render: F,
) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: Fn(EventRow) -> Fut + Send + 'static,
    Fut: Future<Output = Option<(Event, bool)>> + Send,
{
    let wake = core.subscribe();
    let stopped = core.stopped();
    let state = State {
        core,
        audience,
        after,
        wake,
        stopped,
        pending: VecDeque::new(),
        render,
        done: false,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if s.done || *s.stopped.borrow() {
                return None;
            }
            if let Some(row) = s.pending.pop_front() {
                s.after = row.seq;
                let seq = row.seq;
                if let Some((event, last)) = (s.render)(row).await {
                    s.done = last;
                    return Some((Ok(event.id(seq.to_string())), s));
                }
                continue;
            }
            match s.core.store.events_after(&s.audience, s.after).await {
                Ok(rows) if !rows.is_empty() => {
                    s.pending.extend(rows);
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "event stream: storage; retrying"),
            }
            tokio::select! {
                r = s.wake.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = r {
                        return None;
                    }
                }
                _ = s.stopped.changed() => return None,
                // an event another hub wrote whose notification was lost: a slow poll
                // catches it
                _ = tokio::time::sleep(s.core.poll_every) => {}
            }
        }
    })
}
