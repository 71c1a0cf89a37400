//! The media playlist: which segments, how long each is (`#EXTINF`), which init segment
//! (`#EXT-X-MAP`), and where the timeline restarts (`#EXT-X-DISCONTINUITY`); and the
//! mapping of a media time onto a segment.
//!
//! Media time is the playlist's timeline: 0 at the start of its first segment, each
//! segment as long as its `#EXTINF` says. For a VOD or event playlist that is the player's
//! `currentTime`. A point on it is placed on the segments' own clock (PTS, `tfdt`) from an
//! *anchor*: the first segment of its discontinuity run, whose start (earliest decoding
//! time, see [`crate::ts::segment_start`] and [`crate::mp4::segment_start`]) is media
//! time "start of that segment". Inside a run the media clock runs on without gaps, so
//! measuring from the anchor rather than from each segment keeps `#EXTINF` rounding and
//! audio/video skew at segment boundaries out of the result (hls.js maps the whole run
//! from its first fragment the same way).

use crate::limits::{PLAYLIST_BYTES_MAX, PLAYLIST_SEGMENTS_MAX};
use crate::Error;

/// One media segment of a playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// As written in the playlist (relative to it, usually).
    pub uri: String,
    /// The init segment (`#EXT-X-MAP` URI) in force for it: fMP4 when present.
    pub init_uri: Option<String>,
    /// Media time at its start, seconds.
    pub start_s: f64,
    /// `#EXTINF`, seconds.
    pub duration_s: f64,
    /// The first segment of its discontinuity run (an index into the segments).
    pub anchor: usize,
}

/// A media playlist's segments on its timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Playlist {
    pub segments: Vec<Segment>,
    /// The sum of the durations, seconds.
    pub duration_s: f64,
}

/// Where a media time falls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    /// The segment that contains it.
    pub segment: usize,
    /// The first segment of that segment's discontinuity run.
    pub anchor: usize,
    /// Seconds from the start of the anchor segment.
    pub from_anchor_s: f64,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::BadPlaylist {
        reason: reason.into(),
    }
}

impl Playlist {
    /// Reads a media playlist. Refused: master playlists, encrypted segments (the tool
    /// would have to decrypt them), byte-range segments (several segments in one file),
    /// and durations that are not finite and positive.
    pub fn parse(bytes: &[u8]) -> Result<Playlist, Error> {
        if bytes.len() > PLAYLIST_BYTES_MAX {
            return Err(Error::TooLarge {
                what: "playlist",
                bytes: bytes.len() as u64,
                max_bytes: PLAYLIST_BYTES_MAX,
            });
        }
        if !bytes.starts_with(b"#EXTM3U") {
            return Err(bad("it does not start with #EXTM3U"));
        }
        let media = match m3u8_rs::parse_playlist_res(bytes) {
            Ok(m3u8_rs::Playlist::MediaPlaylist(media)) => media,
            Ok(m3u8_rs::Playlist::MasterPlaylist(_)) => {
                return Err(bad(
                    "a multivariant (master) playlist; give one of its media playlists",
                ))
            }
            Err(_) => return Err(bad("it is not a valid M3U8 media playlist")),
        };
        if media.segments.is_empty() {
            return Err(bad("it lists no segments"));
        }
        if media.segments.len() > PLAYLIST_SEGMENTS_MAX {
            return Err(Error::TooMany {
                what: "segments in a playlist",
                max: PLAYLIST_SEGMENTS_MAX,
            });
        }
        let mut segments = Vec::with_capacity(media.segments.len());
        let mut init_uri: Option<String> = None;
        let mut encrypted = false;
        let mut start_s = 0.0_f64;
        let mut anchor = 0;
        for (index, segment) in media.segments.iter().enumerate() {
            // The parser hands each EXT-X-MAP and EXT-X-KEY to the next segment only;
            // both stay in force until the next one.
            if let Some(map) = &segment.map {
                if map.byte_range.is_some() {
                    return Err(bad("EXT-X-MAP with BYTERANGE is not supported"));
                }
                init_uri = Some(map.uri.clone());
            }
            if let Some(key) = &segment.key {
                encrypted = key.method != m3u8_rs::KeyMethod::None;
            }
            if encrypted {
                return Err(bad(format!("segment {} is encrypted", segment.uri)));
            }
            if segment.byte_range.is_some() {
                return Err(bad(format!(
                    "segment {} is a byte range (EXT-X-BYTERANGE is not supported)",
                    segment.uri
                )));
            }
            let duration_s = f64::from(segment.duration);
            if !duration_s.is_finite() || duration_s <= 0.0 {
                return Err(bad(format!(
                    "segment {} has EXTINF {}, not a positive duration",
                    segment.uri, segment.duration
                )));
            }
            if segment.discontinuity {
                anchor = index;
            }
            segments.push(Segment {
                uri: segment.uri.clone(),
                init_uri: init_uri.clone(),
                start_s,
                duration_s,
                anchor,
            });
            start_s += duration_s;
        }
        Ok(Playlist {
            segments,
            duration_s: start_s,
        })
    }

    /// The segment that holds media time `at_s`, its anchor, and the time from the
    /// anchor's start.
    pub fn locate(&self, at_s: f64) -> Result<Location, Error> {
        if !at_s.is_finite() || at_s < 0.0 || at_s >= self.duration_s {
            return Err(Error::TimeOutsideStream {
                at_s,
                duration_s: self.duration_s,
            });
        }
        // The last segment whose start is at or before the time.
        let segment = self
            .segments
            .partition_point(|s| s.start_s <= at_s)
            .saturating_sub(1);
        let anchor = self.segments[segment].anchor;
        Ok(Location {
            segment,
            anchor,
            from_anchor_s: at_s - self.segments[anchor].start_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: &str = "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXTINF:2.000000,
#EXT-X-PROGRAM-DATE-TIME:2026-01-21T08:40:55.332+0000
index0.ts
#EXTINF:2.000000,
#EXT-X-PROGRAM-DATE-TIME:2026-01-21T08:40:57.332+0000
index1.ts
#EXTINF:1.500000,
#EXT-X-DISCONTINUITY
index2.ts
#EXTINF:2.000000,
index3.ts
#EXT-X-ENDLIST
";

    #[test]
    fn reads_segments_times_and_discontinuity_anchors() {
        let playlist = Playlist::parse(TS.as_bytes()).unwrap();
        let summary: Vec<(&str, f64, f64, usize)> = playlist
            .segments
            .iter()
            .map(|s| (s.uri.as_str(), s.start_s, s.duration_s, s.anchor))
            .collect();
        assert_eq!(
            summary,
            [
                ("index0.ts", 0.0, 2.0, 0),
                ("index1.ts", 2.0, 2.0, 0),
                ("index2.ts", 4.0, 1.5, 2),
                ("index3.ts", 5.5, 2.0, 2)
            ]
        );
        assert_eq!(playlist.duration_s, 7.5);
        assert!(playlist.segments.iter().all(|s| s.init_uri.is_none()));
    }

    #[test]
    fn locates_times() {
        let playlist = Playlist::parse(TS.as_bytes()).unwrap();
        let at = |t| {
            let l = playlist.locate(t).unwrap();
            (l.segment, l.anchor, l.from_anchor_s)
        };
        assert_eq!(at(0.0), (0, 0, 0.0));
        assert_eq!(at(0.5), (0, 0, 0.5));
        assert_eq!(at(2.0), (1, 0, 2.0));
        assert_eq!(at(3.2), (1, 0, 3.2));
        assert_eq!(at(5.0), (2, 2, 1.0));
        assert_eq!(at(7.0), (3, 2, 3.0));
        for outside in [-0.1, 7.5, 8.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                playlist.locate(outside),
                Err(Error::TimeOutsideStream { .. })
            ));
        }
    }

    #[test]
    fn the_init_segment_stays_in_force() {
        let playlist = Playlist::parse(
            b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2,\na.m4s\n#EXTINF:2,\nb.m4s\n",
        )
        .unwrap();
        assert_eq!(
            playlist
                .segments
                .iter()
                .map(|s| s.init_uri.as_deref())
                .collect::<Vec<_>>(),
            [Some("init.mp4"), Some("init.mp4")]
        );
    }

    #[test]
    fn refuses_what_it_cannot_rewrite() {
        let cases: [(&[u8], &str); 5] = [
            (b"hello", "does not start with #EXTM3U"),
            (
                b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nlow.m3u8\n",
                "multivariant",
            ),
            (b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n", "no segments"),
            (
                b"#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n#EXTINF:2,\na.ts\n",
                "encrypted",
            ),
            (
                b"#EXTM3U\n#EXTINF:2,\n#EXT-X-BYTERANGE:1000@0\na.ts\n",
                "byte range",
            ),
        ];
        for (bytes, expected) in cases {
            match Playlist::parse(bytes) {
                Err(Error::BadPlaylist { reason }) => {
                    assert!(reason.contains(expected), "{reason:?} lacks {expected:?}")
                }
                other => panic!("{expected}: {other:?}"),
            }
        }
    }
}
