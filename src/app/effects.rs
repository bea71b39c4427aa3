//! Carrying out the session's effects off the controller's loop: card reads on the blocking
//! pool, requests on tasks of their own (after the records queued before them, the route
//! check, under the total deadline), records through the store writer.

use super::store_writer::StoreJob;
use super::*;

impl Controller {
    /// The route check for a patient-related request, run on the blocking pool: the route,
    /// and whether it refuses the request.
    pub(super) async fn tunnel_refuses(
        require_tunnel: bool,
        route: Arc<dyn RouteCheck>,
        addr: Option<IpAddr>,
    ) -> (TunnelState, bool) {
        if !require_tunnel {
            return (TunnelState::Unknown, false);
        }
        let state = match addr {
            Some(addr) => tokio::task::spawn_blocking(move || route.route_to(addr))
                .await
                .unwrap_or(TunnelState::Unknown),
            None => TunnelState::Unknown,
        };
        if state != TunnelState::Tunnel {
            tracing::warn!(route = ?state, "patient request refused: route is not the tunnel");
        }
        (state, state != TunnelState::Tunnel)
    }

    pub(super) fn execute(&mut self, effect: Effect) {
        match effect {
            Effect::ReadCard { incident } => {
                let reader = self.ports.reader.clone();
                let fallback = Outcome::Events(vec![Event::CardReadFailed {
                    incident: incident.clone(),
                    failure: crate::session::CardFailure::Unresponsive,
                }]);
                self.spawn(
                    async move {
                        let read = tokio::task::spawn_blocking(move || reader.read_credential())
                            .await
                            .unwrap_or_else(|e| {
                                Err(CardError::Unresponsive(format!("card task: {e}")))
                            });
                        Outcome::Events(vec![match read {
                            Ok(credential) => Event::CardReadOk {
                                incident,
                                credential,
                            },
                            Err(CardError::PhonePinRequired) => Event::PhoneNeedsPin { incident },
                            Err(e) => {
                                tracing::warn!(error = %e, "card read failed");
                                Event::CardReadFailed {
                                    incident,
                                    failure: e.card_failure(),
                                }
                            }
                        }])
                    },
                    fallback,
                );
            }
            Effect::SendQualification(request) => {
                let fallback = Outcome::Events(vec![Event::QualificationFailed {
                    incident: request.incident.clone(),
                    failure: ServiceFailure::Protocol,
                }]);
                let incident = request.incident.clone();
                let job = self.request_job(
                    move |client| async move {
                        let incident = request.incident.clone();
                        vec![match client.qualification(&request).await {
                            Ok(QualificationResponse::Coverage {
                                qualification_ref,
                                coverage,
                            }) => Event::QualificationAnswered {
                                incident,
                                qualification: qualification_ref,
                                coverage,
                            },
                            Ok(QualificationResponse::OptOut) => {
                                Event::QualificationOptOut { incident }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "qualification failed");
                                Event::QualificationFailed {
                                    incident,
                                    failure: e.service_failure(),
                                }
                            }
                        }]
                    },
                    move |failure| vec![Event::QualificationFailed { incident, failure }],
                );
                self.spawn(job, fallback);
            }
            Effect::SendEmergencyInquiry(inquiry) => {
                let fallback = Outcome::Events(vec![Event::EmergencyInfoFailed {
                    incident: inquiry.incident.clone(),
                    failure: ServiceFailure::Protocol,
                }]);
                let incident = inquiry.incident.clone();
                // the PIN path carries the card's own signature over its challenge
                let signature = match &self.card_signature {
                    Some((i, sig))
                        if *i == inquiry.incident
                            && inquiry.identity_check.needs_card_signature() =>
                    {
                        Some(sig.clone())
                    }
                    _ => None,
                };
                let job = self.request_job(
                    move |client| async move {
                        let incident = inquiry.incident.clone();
                        vec![match client
                            .emergency_info_signed(&inquiry, signature.as_deref())
                            .await
                        {
                            Ok(info) => Event::EmergencyInfoAnswered {
                                incident,
                                info: Box::new(info),
                            },
                            Err(e) => {
                                tracing::warn!(error = %e, "emergency-info inquiry failed");
                                Event::EmergencyInfoFailed {
                                    incident,
                                    failure: e.service_failure(),
                                }
                            }
                        }]
                    },
                    move |failure| {
                        vec![Event::EmergencyInfoFailed {
                            incident: incident.clone(),
                            failure,
                        }]
                    },
                );
                self.spawn(job, fallback);
            }
            Effect::AppendConsentRecord(record) => {
                self.consent_at = Some((record.incident.clone(), record.at));
                self.append(RecordBody::Consent(record))
            }
            Effect::AppendConsentCorrection(c) => self.append(RecordBody::ConsentCorrection(c)),
            Effect::AppendExplanation(x) => self.append(RecordBody::Explanation(x)),
            Effect::AppendAudit(entry) => self.append(RecordBody::Audit(entry)),
            // The patient's data lives only in the session (and the view model built from
            // it): nothing on disk to purge.
            Effect::PurgePatientData { .. } => {
                // a hand-off drawn from this viewing ends with it; one without a card
                // (opened from Ready) goes on
                if self.handoff.as_ref().is_some_and(|h| h.flow.with_card)
                    || self.session.phase() == Phase::SignedOut
                {
                    self.end_handoff("the viewing ended");
                }
                self.consent_at = None;
                self.viewed_at = None;
                self.pin = PinView::default();
                self.card_signature = None;
                self.phone_pin = None;
            }
        }
    }

    /// A request as a job off the loop: it waits for the records queued before it, checks
    /// the route where the tunnel is required, and gives up after the total deadline.
    /// `failed` turns a refusal or a timeout into the session's failure event.
    pub(super) fn request_job<Call, Fut, Failed>(
        &self,
        send: Call,
        failed: Failed,
    ) -> impl std::future::Future<Output = Outcome> + 'static + Send
    where
        Call: FnOnce(Arc<EligibilityClient>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Vec<Event>> + Send + 'static,
        Failed: FnOnce(ServiceFailure) -> Vec<Event> + Send + 'static,
    {
        let client = self.ports.client.clone();
        let route = self.ports.route.clone();
        let addr = self.ports.endpoint_addr;
        let require_tunnel = self.settings.require_tunnel;
        let deadline = self.settings.request_deadline;
        let barrier = self.writer.barrier();
        async move {
            let _ = barrier.await;
            let (state, refused) = Self::tunnel_refuses(require_tunnel, route, addr).await;
            let route = require_tunnel.then_some(state);
            if refused {
                return Outcome::Answer {
                    route,
                    events: failed(ServiceFailure::TunnelRequired),
                };
            }
            let events = match tokio::time::timeout(deadline, send(client)).await {
                Ok(events) => events,
                Err(_) => {
                    tracing::warn!(
                        deadline_ms = deadline.as_millis() as u64,
                        "request deadline passed"
                    );
                    failed(ServiceFailure::Timeout)
                }
            };
            Outcome::Answer { route, events }
        }
    }

    pub(super) fn store_job(&mut self, job: StoreJob) {
        if self.writer.send(job) {
            self.in_flight += 1;
        } else {
            tracing::error!("store writer gone: record not stored");
            self.store_errors
                .push("store writer gone: record not stored".into());
        }
    }

    pub(super) fn append(&mut self, body: RecordBody) {
        if let Some(kept) = self.recorded.as_mut() {
            kept.push(body.clone());
        }
        self.store_job(StoreJob::Append(Box::new(body), Timestamp::now()));
    }
}
