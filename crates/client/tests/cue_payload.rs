//! The player's reader of cue payloads (`playback::cue_fields`) against the format's
//! owner, `ovation-cues`: every payload the owner writes or accepts reads the same.

use ovation_client::playback::cue_fields;
use ovation_cues::limits::{CUE_ID_BYTES_MAX, CUE_REFERENCE_ID_BYTES_MAX};
use ovation_cues::{Cue, InteractionKind};
use proptest::prelude::*;

fn id(bytes_max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9_.-]{{1,{bytes_max}}}")).unwrap()
}

proptest! {
    #[test]
    fn every_payload_the_format_writes_reads_alike(
        cue_id in id(CUE_ID_BYTES_MAX),
        kind in prop::sample::select(InteractionKind::ALL.to_vec()),
        reference_id in id(CUE_REFERENCE_ID_BYTES_MAX),
    ) {
        let cue = Cue::new(&cue_id, kind, &reference_id).unwrap();
        let payload = cue.to_payload();
        let fields = cue_fields(&payload).expect("a payload the format writes");
        prop_assert_eq!(fields.cue, cue_id.as_str());
        let reference = fields.reference.expect("every cue names its interaction");
        prop_assert_eq!(reference.kind, kind.as_str());
        prop_assert_eq!(reference.id, reference_id.as_str());
    }

    /// Text near the format (fields in any order, unknown ones, versions): whatever the
    /// strict reader accepts, the player reads to the same cue and interaction.
    #[test]
    fn every_payload_the_format_accepts_reads_alike(
        fields in prop::collection::vec(
            prop_oneof![
                Just("v=1".to_owned()),
                Just("v=2".to_owned()),
                id(8).prop_map(|v| format!("cue={v}")),
                (prop::sample::select(vec!["poll", "quiz", "product", "qa", "custom", "x"]), id(8))
                    .prop_map(|(k, v)| format!("ref={k}:{v}")),
                id(4).prop_map(|v| format!("x-{}={v}", v.to_lowercase().replace('.', "_"))),
            ],
            0..6,
        ),
    ) {
        let payload = fields.join(";");
        if let Ok(cue) = Cue::from_payload(payload.as_bytes()) {
            let read = cue_fields(&payload).expect("the strict reader accepted it");
            prop_assert_eq!(read.cue, cue.id.as_str());
            let reference = read.reference.expect("an accepted cue names its interaction");
            prop_assert_eq!(reference.kind, cue.reference.kind().as_str());
            prop_assert_eq!(reference.id, cue.reference.id());
        }
    }
}

#[test]
fn the_cue_event_is_the_payloads_fields_as_json() {
    let event = |payload: &str| -> serde_json::Value {
        let fields = cue_fields(payload).unwrap();
        serde_json::from_str(&ovation_client::cue_event_json(&fields)).unwrap()
    };
    assert_eq!(
        event("v=1;cue=poll-1;ref=poll:p1"),
        serde_json::json!({"cue": "poll-1", "ref": {"kind": "poll", "id": "p1"}})
    );
    assert_eq!(
        event("v=1;cue=c"),
        serde_json::json!({"cue": "c", "ref": null})
    );
    // Text the JSON must escape reads back as it was.
    assert_eq!(
        event("v=1;cue=\"a\\b\u{1}\";ref=custom:\u{2028}")["cue"],
        "\"a\\b\u{1}\""
    );
}

#[test]
fn a_payload_at_the_formats_bound_is_a_cue_and_one_past_it_is_passed_over() {
    use ovation_client::playback::Playback;
    use ovation_proto::limits::CLIENT_CUE_PAYLOAD_BYTES_MAX;
    assert_eq!(
        CLIENT_CUE_PAYLOAD_BYTES_MAX,
        ovation_cues::CUE_PAYLOAD_BYTES_MAX
    );
    let padded = |len: usize| {
        let head = "v=1;cue=c;ref=poll:p;x=";
        format!("{head}{}", "a".repeat(len - head.len()))
    };
    for (len, told) in [
        (CLIENT_CUE_PAYLOAD_BYTES_MAX, true),
        (CLIENT_CUE_PAYLOAD_BYTES_MAX + 1, false),
        (64 * 1024, false),
    ] {
        let mut p = Playback::new();
        p.add_cue(&padded(len), 1_000);
        p.playhead(900, None);
        p.playhead(1_100, None);
        assert_eq!(p.poll_told().is_some(), told, "{len} bytes");
    }
}
