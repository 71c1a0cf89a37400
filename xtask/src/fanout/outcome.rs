//! What one fan-out target measured (the generator's report, the server's CPU), and the
//! figures derived from it: deliveries per CPU-second, wire bytes and client messages per
//! delivery, and the Durable Object requests Cloudflare would bill.

use super::{is_ours, Params, OURS_WRANGLER_DEV};
use serde_json::Value;

/// Targets billed as Durable Objects on Cloudflare (requests per WebSocket connect and
/// message). Self-hosted workerd bills nothing per request.
const DURABLE_OBJECT_TARGETS: [&str; 4] = ["ovation", OURS_WRANGLER_DEV, "naive-do", "partyserver"];

/// Cloudflare bills incoming WebSocket messages to a Durable Object at 20 per request
/// (auto-response pings count 0); each WebSocket connect is one request.
const INCOMING_MESSAGES_PER_BILLED_REQUEST: f64 = 20.0;

/// What one target measured, or why it could not.
pub(super) struct Outcome {
    pub(super) target: &'static str,
    /// The load generator's report as written (field names read generically).
    pub(super) report: Value,
    /// The server group's CPU over `server_cpu_span`: the generator's measured window
    /// when its phase lines were seen, else its whole run.
    pub(super) server_cpu_s: Option<f64>,
    pub(super) server_cpu_span: &'static str,
    pub(super) server_cpu_s_whole_run: Option<f64>,
    pub(super) window_s: Option<f64>,
    /// The server group's CPU over the generator's connect phase (the join storm).
    pub(super) joins_cpu: Option<JoinCpu>,
    pub(super) error: Option<String>,
}

/// The server's CPU while every viewer joined: whether joins are bound by the server's
/// work (CPU near the machine's cores) or by each join's round trips (the generator
/// keeps `CONNECT_CONCURRENCY` joins in flight).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct JoinCpu {
    pub(super) server_cpu_s: f64,
    pub(super) wall_s: f64,
}

impl Outcome {
    pub(super) fn number(&self, field: &str) -> Option<f64> {
        self.report.get(field).and_then(Value::as_f64)
    }

    /// The first of these report fields that is there (names the report may use).
    pub(super) fn first_number(&self, fields: &[&str]) -> Option<f64> {
        fields.iter().find_map(|field| self.number(field))
    }

    /// Viewers connected per second of the generator's connect phase (a join storm:
    /// every viewer connects at the start).
    pub(super) fn joins_per_s(&self) -> Option<f64> {
        let connect_s = self.number("connect_s").filter(|s| *s > 0.0)?;
        Some(self.number("viewers_connected")? / connect_s)
    }

    /// Server CPU per viewer joined, in µs, over the connect phase.
    pub(super) fn cpu_us_per_join(&self) -> Option<f64> {
        let joins = self.number("viewers_connected").filter(|j| *j > 0.0)?;
        Some(self.joins_cpu?.server_cpu_s * 1e6 / joins)
    }

    /// Cores the server kept busy while viewers joined (CPU-seconds per second).
    pub(super) fn join_cores(&self) -> Option<f64> {
        let joins = self.joins_cpu.filter(|j| j.wall_s > 0.0)?;
        Some(joins.server_cpu_s / joins.wall_s)
    }

    pub(super) fn deliveries_per_cpu_s(&self) -> Option<f64> {
        let cpu_s = self.server_cpu_s.filter(|s| *s > 0.0)?;
        Some(self.number("deliveries")? / cpu_s)
    }

    /// Server CPU per WebSocket message the viewers received, in µs: where batching
    /// pays (a batch carries several comments in one message).
    pub(super) fn cpu_us_per_message(&self) -> Option<f64> {
        let messages = self.number("messages_received").filter(|m| *m > 0.0)?;
        Some(self.server_cpu_s? * 1e6 / messages)
    }

    /// Every data message the clients sent in the window (comments, likes, heartbeat
    /// answers, churn handshakes).
    pub(super) fn client_messages(&self) -> Option<f64> {
        self.first_number(&["messages_sent", "client_messages_sent"])
    }

    pub(super) fn client_messages_per_delivery(&self) -> Option<f64> {
        let deliveries = self.number("deliveries").filter(|d| *d > 0.0)?;
        Some(self.client_messages()? / deliveries)
    }

    /// Bytes on the wire per delivered comment: the report's payload bytes per delivery
    /// plus, when it counts received messages, the WebSocket header of each (2 bytes up
    /// to 125 payload bytes, 4 up to 64 KiB, 10 above; server frames are not masked). The
    /// flag says whether the headers are in.
    pub(super) fn wire_bytes_per_delivery(&self) -> Option<(f64, bool)> {
        let payload = self.number("bytes_per_delivery")?;
        let frames = self
            .first_number(&["frames_received", "messages_received"])
            .filter(|f| *f > 0.0);
        let deliveries = self.number("deliveries").filter(|d| *d > 0.0);
        let (Some(frames), Some(deliveries)) = (frames, deliveries) else {
            return Some((payload, false));
        };
        let bytes_per_frame = self
            .first_number(&["payload_bytes_received", "bytes_received"])
            .unwrap_or(0.0)
            / frames;
        let header_bytes = match bytes_per_frame {
            b if b < 126.0 => 2.0,
            b if b < 65_536.0 => 4.0,
            _ => 10.0,
        };
        Some((payload + header_bytes * frames / deliveries, true))
    }

    /// WebSocket connects of the run: the report's `connects` when it has them, else the
    /// viewers connected at the start plus the churn's joins.
    pub(super) fn connects(&self, params: &Params) -> Option<f64> {
        self.number("connects").or_else(|| {
            let churn_joins = self.number("churn_joins").unwrap_or_else(|| {
                params.churn_per_s
                    * self
                        .number("duration_s")
                        .unwrap_or(params.duration_s as f64)
            });
            Some(self.number("viewers_connected")? + churn_joins)
        })
    }

    /// Billable Durable Object requests of the run, split: one per WebSocket connect, and
    /// incoming messages at 20 to 1 (plus, for ours, the room↔shard requests when the
    /// report counts them).
    pub(super) fn durable_object_requests(&self, params: &Params) -> Option<(f64, f64)> {
        if !DURABLE_OBJECT_TARGETS.contains(&self.target) {
            return None;
        }
        let internal = if is_ours(self.target) {
            self.number("do_internal_requests").unwrap_or(0.0)
        } else {
            0.0
        };
        Some((
            self.connects(params)?,
            self.client_messages()? / INCOMING_MESSAGES_PER_BILLED_REQUEST + internal,
        ))
    }

    /// `durable_object_requests` per 1,000 viewer-minutes of the window (viewers ×
    /// duration).
    pub(super) fn durable_object_requests_per_1k_viewer_minutes(
        &self,
        params: &Params,
    ) -> Option<(f64, f64)> {
        let (connects, messages) = self.durable_object_requests(params)?;
        let viewers = self
            .number("viewers_connected")
            .unwrap_or(params.viewers as f64);
        let duration_s = self
            .number("duration_s")
            .unwrap_or(params.duration_s as f64);
        let per_1k = 1_000.0 / (viewers * duration_s / 60.0);
        per_1k
            .is_finite()
            .then_some((connects * per_1k, messages * per_1k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::{options, OURS, OURS_SELF_HOSTED, USAGE};
    use crate::Result;
    use serde_json::json;

    fn parse(args: &[&str]) -> Result<Params> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Params::parse(&options(&args, USAGE)?, USAGE)
    }

    #[test]
    fn self_hosted_workerd_is_not_billed_per_request() {
        let outcome = Outcome {
            target: OURS_SELF_HOSTED,
            report: json!({"viewers_connected": 10.0, "messages_sent": 40.0}),
            server_cpu_s: None,
            server_cpu_span: "window",
            server_cpu_s_whole_run: None,
            window_s: None,
            joins_cpu: None,
            error: None,
        };
        let params = parse(&[]).unwrap();
        assert_eq!(outcome.durable_object_requests(&params), None);
        let billed = Outcome {
            target: OURS,
            ..outcome
        };
        assert_eq!(billed.durable_object_requests(&params), Some((10.0, 2.0)));
    }

    #[test]
    fn joins_per_s_is_viewers_over_the_connect_phase() {
        let outcome = Outcome {
            target: OURS_SELF_HOSTED,
            report: json!({"viewers_connected": 1000.0, "connect_s": 4.0}),
            server_cpu_s: None,
            server_cpu_span: "window",
            server_cpu_s_whole_run: None,
            window_s: None,
            joins_cpu: Some(JoinCpu {
                server_cpu_s: 3.0,
                wall_s: 4.0,
            }),
            error: None,
        };
        assert_eq!(outcome.joins_per_s(), Some(250.0));
        assert_eq!(outcome.cpu_us_per_join(), Some(3_000.0));
        assert_eq!(outcome.join_cores(), Some(0.75));
    }
}
