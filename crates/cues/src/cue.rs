//! The Ovation cue: which interaction to open when a video frame plays, and its payload.

use crate::emsg::{Emsg, PresentationTime, EMSG_EVENT_DURATION_UNKNOWN, EMSG_SCHEME_ID3};
use crate::id3::{Frame, Id3Version, Tag, WriteOptions};
use crate::limits::{CUE_ID_BYTES_MAX, CUE_PAYLOAD_BYTES_MAX, CUE_REFERENCE_ID_BYTES_MAX};
use crate::text::TextEncoding;
use crate::Error;

/// The `TXXX` description (or `PRIV` owner identifier) of the frame carrying a cue.
pub const CUE_FRAME_NAME: &str = "ovation";
/// The payload version this crate writes and the only one it reads.
pub const CUE_PAYLOAD_VERSION: u8 = 1;

/// Whether `id` is 1..=`max` bytes of `[A-Za-z0-9_.-]`.
fn is_valid_id(id: &str, max_bytes: usize) -> bool {
    !id.is_empty()
        && id.len() <= max_bytes
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A cue id: 1..=[`CUE_ID_BYTES_MAX`] bytes of `[A-Za-z0-9_.-]`, as set on the
/// interaction (for example a poll's `cue`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CueId(String);

impl CueId {
    /// The id, or [`Error::InvalidCue`] when it breaks the rule above.
    pub fn new(id: &str) -> Result<CueId, Error> {
        if is_valid_id(id, CUE_ID_BYTES_MAX) {
            Ok(CueId(id.to_owned()))
        } else {
            Err(Error::InvalidCue {
                reason: "a cue id is 1..=CUE_ID_BYTES_MAX bytes of [A-Za-z0-9_.-]",
            })
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What kind of interaction a cue opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InteractionKind {
    Poll,
    Quiz,
    Product,
    Qa,
    /// An interaction of the application's own.
    Custom,
}

impl InteractionKind {
    /// Every kind.
    pub const ALL: [InteractionKind; 5] = [
        InteractionKind::Poll,
        InteractionKind::Quiz,
        InteractionKind::Product,
        InteractionKind::Qa,
        InteractionKind::Custom,
    ];

    /// The name in the payload: `poll`, `quiz`, `product`, `qa` or `custom`.
    pub fn as_str(self) -> &'static str {
        match self {
            InteractionKind::Poll => "poll",
            InteractionKind::Quiz => "quiz",
            InteractionKind::Product => "product",
            InteractionKind::Qa => "qa",
            InteractionKind::Custom => "custom",
        }
    }

    /// The kind with this payload name.
    pub fn from_name(name: &str) -> Option<InteractionKind> {
        InteractionKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// The interaction a cue opens: its kind and id (1..=[`CUE_REFERENCE_ID_BYTES_MAX`] bytes
/// of `[A-Za-z0-9_.-]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InteractionRef {
    kind: InteractionKind,
    id: String,
}

impl InteractionRef {
    /// The reference, or [`Error::InvalidCue`] when the id breaks the rule above.
    pub fn new(kind: InteractionKind, id: &str) -> Result<InteractionRef, Error> {
        if is_valid_id(id, CUE_REFERENCE_ID_BYTES_MAX) {
            Ok(InteractionRef {
                kind,
                id: id.to_owned(),
            })
        } else {
            Err(Error::InvalidCue {
                reason:
                    "an interaction id is 1..=CUE_REFERENCE_ID_BYTES_MAX bytes of [A-Za-z0-9_.-]",
            })
        }
    }

    pub fn kind(&self) -> InteractionKind {
        self.kind
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A cue: when the frame carrying it plays, open `reference`. See the crate docs for the
/// payload and how it is carried.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cue {
    pub id: CueId,
    pub reference: InteractionRef,
}

impl Cue {
    /// A cue from its parts, each checked.
    pub fn new(id: &str, kind: InteractionKind, reference_id: &str) -> Result<Cue, Error> {
        Ok(Cue {
            id: CueId::new(id)?,
            reference: InteractionRef::new(kind, reference_id)?,
        })
    }

    /// The payload text: `v=1;cue=<id>;ref=<kind>:<id>`.
    pub fn to_payload(&self) -> String {
        let payload = format!(
            "v={CUE_PAYLOAD_VERSION};cue={};ref={}:{}",
            self.id.as_str(),
            self.reference.kind.as_str(),
            self.reference.id
        );
        // Invariant: both ids are bounded far below the payload limit.
        assert!(payload.len() <= CUE_PAYLOAD_BYTES_MAX);
        payload
    }

    /// Reads a payload (see the crate docs for the rules).
    pub fn from_payload(payload: &[u8]) -> Result<Cue, Error> {
        if payload.len() > CUE_PAYLOAD_BYTES_MAX {
            return Err(Error::TooLarge {
                what: "cue payload",
                bytes: payload.len() as u64,
                max_bytes: CUE_PAYLOAD_BYTES_MAX,
            });
        }
        if !payload.iter().all(|b| (0x20..=0x7E).contains(b)) {
            return Err(Error::InvalidCue {
                reason: "a payload is printable ASCII",
            });
        }
        // Invariant: checked to be ASCII just above.
        let payload = std::str::from_utf8(payload).expect("ASCII is UTF-8");
        let mut fields = payload.split(';').map(|field| {
            let (key, value) = field.split_once('=').ok_or(Error::InvalidCue {
                reason: "a payload field is key=value",
            })?;
            let key_ok = !key.is_empty()
                && key.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if key_ok {
                Ok((key, value))
            } else {
                Err(Error::InvalidCue {
                    reason: "a payload key is [a-z0-9_-]+",
                })
            }
        });
        // The version comes first so that a later version may change everything after it.
        let version = match fields.next() {
            Some(Ok(("v", version))) => version,
            Some(Err(error)) => return Err(error),
            _ => {
                return Err(Error::InvalidCue {
                    reason: "a payload starts with v=<version>",
                })
            }
        };
        if version.is_empty() || version.len() > 3 || !version.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::InvalidCue {
                reason: "a payload version is a number 0..=255",
            });
        }
        let version: u8 = version.parse().map_err(|_| Error::InvalidCue {
            reason: "a payload version is a number 0..=255",
        })?;
        if version != CUE_PAYLOAD_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "cue payload",
                version,
            });
        }
        let mut seen_keys: Vec<&str> = vec!["v"];
        let (mut cue_id, mut reference) = (None, None);
        for field in fields {
            let (key, value) = field?;
            if seen_keys.contains(&key) {
                return Err(Error::InvalidCue {
                    reason: "a payload key appears twice",
                });
            }
            seen_keys.push(key);
            match key {
                "cue" => cue_id = Some(CueId::new(value)?),
                "ref" => {
                    let (kind, id) = value.split_once(':').ok_or(Error::InvalidCue {
                        reason: "a reference is <kind>:<id>",
                    })?;
                    let kind = InteractionKind::from_name(kind).ok_or(Error::InvalidCue {
                        reason: "a reference kind is poll, quiz, product, qa or custom",
                    })?;
                    reference = Some(InteractionRef::new(kind, id)?);
                }
                // Fields added later in version 1 are optional by definition: skip them.
                _ => {}
            }
        }
        match (cue_id, reference) {
            (Some(id), Some(reference)) => Ok(Cue { id, reference }),
            (None, _) => Err(Error::InvalidCue {
                reason: "a payload has a cue field",
            }),
            (_, None) => Err(Error::InvalidCue {
                reason: "a payload has a ref field",
            }),
        }
    }

    /// An ID3v2.4 tag with one `TXXX` frame: description `ovation`, the payload as value,
    /// in ISO-8859-1 (the payload is ASCII, and every ID3 reader knows that encoding).
    pub fn to_id3_tag(&self) -> Tag {
        Tag {
            version: Id3Version::V2_4,
            frames: vec![Frame::UserText {
                encoding: TextEncoding::Latin1,
                description: CUE_FRAME_NAME.to_owned(),
                value: self.to_payload(),
            }],
        }
    }

    /// [`Cue::to_id3_tag`], stored without unsynchronisation, padding or footer.
    pub fn to_id3_bytes(&self) -> Vec<u8> {
        // Invariant: an ASCII TXXX frame of a bounded payload is always writable.
        self.to_id3_tag()
            .to_bytes(&WriteOptions::default())
            .expect("a cue tag is writable")
    }

    /// The cue of the first frame in `tag` that is a `TXXX` frame described `ovation` or
    /// a `PRIV` frame owned by `ovation` (its data is the payload). [`Error::NoCue`] when
    /// there is none; other frames are ignored.
    pub fn from_id3_tag(tag: &Tag) -> Result<Cue, Error> {
        let payload = tag
            .frames
            .iter()
            .find_map(|frame| match frame {
                Frame::UserText {
                    description, value, ..
                } if description == CUE_FRAME_NAME => Some(value.as_bytes()),
                Frame::Private { owner, data } if owner == CUE_FRAME_NAME => Some(data.as_slice()),
                _ => None,
            })
            .ok_or(Error::NoCue)?;
        Cue::from_payload(payload)
    }

    /// Parses an ID3 tag that fills `bytes` and reads its cue.
    pub fn from_id3_bytes(bytes: &[u8]) -> Result<Cue, Error> {
        Cue::from_id3_tag(&Tag::parse(bytes)?)
    }

    /// A version 1 `emsg` of scheme [`EMSG_SCHEME_ID3`] carrying [`Cue::to_id3_bytes`],
    /// with an empty `value` and an unknown duration. `presentation_time` is in
    /// `timescale` ticks on the track's timeline; `event_id` identifies the event (repeats
    /// of the same cue in later segments keep it).
    pub fn to_emsg(&self, timescale: u32, presentation_time: u64, event_id: u32) -> Emsg {
        Emsg {
            scheme_id_uri: EMSG_SCHEME_ID3.to_owned(),
            value: String::new(),
            timescale,
            time: PresentationTime::Absolute(presentation_time),
            event_duration: EMSG_EVENT_DURATION_UNKNOWN,
            id: event_id,
            message_data: self.to_id3_bytes(),
        }
    }

    /// The cue in an `emsg` of scheme [`EMSG_SCHEME_ID3`] (either version).
    pub fn from_emsg(emsg: &Emsg) -> Result<Cue, Error> {
        if emsg.scheme_id_uri != EMSG_SCHEME_ID3 {
            return Err(Error::WrongScheme);
        }
        Cue::from_id3_bytes(&emsg.message_data)
    }
}
