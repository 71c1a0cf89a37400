//! The room object as the settlement service's client: its URL and secret, the gift
//! request, and what each answer means (the rules are `ovation_room::settlement`).

use super::*;

impl RoomObject {
    /// The settlement service's URL and bearer secret (a `wrangler secret`, never in
    /// wrangler.toml). A URL without a secret is a misconfiguration: logged, and gifts
    /// stay off rather than calling the service with an empty bearer.
    pub(crate) fn settlement(&self) -> Option<(String, String)> {
        let url = crate::text_binding(&self.env, "OVATION_SETTLEMENT_URL")?;
        let secret =
            crate::text_binding(&self.env, "OVATION_SETTLEMENT_SECRET").unwrap_or_default();
        if url.is_empty() {
            return None;
        }
        if secret.is_empty() {
            crate::http::log_error_once(
                "settlement_not_configured",
                "OVATION_SETTLEMENT_URL is set but OVATION_SETTLEMENT_SECRET is not; \
                 set it with `wrangler secret put OVATION_SETTLEMENT_SECRET`",
            );
            return None;
        }
        Some((url, secret))
    }

    /// The room's account at the settlement service: tenant, room and epoch (a reopened
    /// room is a new account).
    pub(crate) fn ledger_room(&self) -> Option<String> {
        let memory = self.memory.borrow();
        let room = memory.room.as_ref()?;
        Some(ledger_room_account(
            &memory.tenant,
            &room.info().room_id,
            room.epoch(),
        ))
    }

    pub(crate) async fn settlement_call(
        &self,
        path: &str,
        body: String,
    ) -> std::result::Result<(u16, Vec<u8>), String> {
        let (url, secret) = self
            .settlement()
            .ok_or_else(|| "gifts are not configured".to_owned())?;
        let headers = Headers::new();
        let _ = headers.set("content-type", "application/json");
        let _ = headers.set("authorization", &format!("Bearer {secret}"));
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let request =
            Request::new_with_init(&format!("{url}{path}"), &init).map_err(|e| e.to_string())?;
        // Bounded: a settlement service that never answers must not hold a create (which
        // refuses the others meanwhile) or the charges of a pump (and whatever waits for
        // that pump) for ever. Answered as a failure: a charge then is `unavailable`,
        // whose retry the ledger answers with the charge's own outcome.
        let abort = worker::AbortController::default();
        let signal = abort.signal();
        let exchange = async move {
            let mut response = Fetch::Request(request)
                .send_with_signal(&signal)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status_code();
            // Parsed in Rust (`ovation_room::charge_outcome`): a balance above 2^53 must
            // not be rounded by JavaScript.
            let body = response.bytes().await.unwrap_or_default();
            Ok((status, body))
        };
        let limit_ms = u64::from(ovation_proto::limits::SETTLEMENT_CALL_TIMEOUT_MS);
        let deadline = worker::Delay::from(std::time::Duration::from_millis(limit_ms));
        match futures_util::future::select(std::pin::pin!(exchange), deadline).await {
            futures_util::future::Either::Left((answer, _)) => answer,
            futures_util::future::Either::Right(_) => {
                // The request itself is given up too, not left to reach the service
                // after the gifter was told `unavailable`.
                abort.abort();
                Err(format!(
                    "the settlement service did not answer within {limit_ms} ms"
                ))
            }
        }
    }

    /// Charges one gift of the opening whose ledger account is `room`, under `tenant`
    /// (both as they were when the room asked for the charge).
    pub(crate) async fn charge(
        &self,
        charge: &ChargeRequest,
        tenant: &str,
        room: &str,
    ) -> ChargeOutcome {
        let refused = |code, message: String| ChargeOutcome::Refused { code, message };
        if tenant.is_empty() {
            // Not one charge under accounts no tenant owns: the gifter retries with the
            // same gift id once the room knows its tenant (the ledger answers a repeated
            // id with the original answer).
            crate::http::log_error_once(
                "tenant_unknown",
                "a room object woke without knowing its tenant; gifts wait for it",
            );
            return refused(
                ErrorCode::Unavailable,
                SETTLEMENT_UNAVAILABLE_MESSAGE.into(),
            );
        }
        let body = gift_request_body(tenant, room, charge);
        if self.settlement().is_none() {
            // Told plainly, not "retry", and not logged per gift (the misconfiguration
            // is logged once by `settlement`).
            return refused(
                ErrorCode::Unavailable,
                "gifts are off here: no settlement service is configured".into(),
            );
        }
        match self.settlement_call("/v1/gifts", body).await {
            Ok((status, body)) => {
                let outcome = charge_outcome(status, &body);
                if matches!(
                    &outcome,
                    ChargeOutcome::Refused {
                        code: ErrorCode::Unavailable,
                        ..
                    }
                ) {
                    log_json(
                        json!({"level":"error","event":"settlement_error","status":status,
                                    "body":String::from_utf8_lossy(&body)}),
                    );
                }
                outcome
            }
            Err(cause) => {
                log_json(json!({"level":"error","event":"settlement_unreachable","cause":cause}));
                refused(
                    ErrorCode::Unavailable,
                    SETTLEMENT_UNAVAILABLE_MESSAGE.into(),
                )
            }
        }
    }
}
