//! `ovation-cue`: put Ovation cues into HLS segments, and list the cues of a stream.
//!
//! The file work lives here (read with limits, write to a temporary file and rename it
//! over the segment, so a failure never leaves a half-written segment); every decision
//! about bytes is `ovation_cue_tool`'s.

use clap::{Parser, Subcommand};
use ovation_cue_tool::limits::{
    CUES_FILE_BYTES_MAX, CUES_PER_RUN_MAX, PLAYLIST_BYTES_MAX, SEGMENT_BYTES_MAX,
};
use ovation_cue_tool::mp4::{self, TrackTiming};
use ovation_cue_tool::ts::pes::PTS_HZ;
use ovation_cue_tool::{
    check_media_time, list_segment, pts_at, seconds_from_pts, ticks_at, ts, CueTime, Listing,
    Location, Playlist, SegmentFormat,
};
use ovation_cues::{Cue, InteractionKind, PresentationTime};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ovation-cue",
    version,
    about = "Put Ovation cues into HLS segments (ID3 in MPEG-TS, emsg in fMP4) and list them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Add cues to the segments of an HLS media playlist, rewriting those segments in
    /// place. Give one or more `--at T --cue ID --ref KIND:ID` triples (the n-th of each
    /// go together) and/or `--cues-file`. A cue already in its segment at the same time
    /// is skipped, so running the same command twice adds nothing the second time.
    Inject {
        /// The media playlist (.m3u8) whose segments to rewrite.
        #[arg(long)]
        playlist: PathBuf,
        /// Media time of a cue: seconds from the start of the playlist's first segment.
        #[arg(long = "at", value_name = "SECONDS", allow_negative_numbers = true)]
        at_s: Vec<f64>,
        /// Cue id: 1 to 64 characters of [A-Za-z0-9_.-].
        #[arg(long = "cue", value_name = "ID")]
        cue: Vec<String>,
        /// The interaction the cue opens: poll|quiz|product|qa|custom, a colon, its id.
        #[arg(long = "ref", value_name = "KIND:ID")]
        reference: Vec<String>,
        /// A JSON array of cues: [{"at": 12.5, "cue": "q3-open", "ref": "poll:p3"}, ...].
        #[arg(long, value_name = "PATH")]
        cues_file: Option<PathBuf>,
        /// fMP4 only: the timescale of the emsg boxes (default: the init segment's first
        /// track's, from its mdhd).
        #[arg(long, value_name = "TICKS_PER_SECOND")]
        timescale: Option<u32>,
    },
    /// Print every cue with its time: from a playlist (media time, seconds from its
    /// start), or from segment files (each segment's own clock: PTS or emsg time).
    List {
        /// The media playlist whose segments to read.
        #[arg(long, conflicts_with = "segments")]
        playlist: Option<PathBuf>,
        /// Segment files (.ts or fMP4 .m4s), when not reading a playlist.
        #[arg(value_name = "SEGMENT", required_unless_present = "playlist")]
        segments: Vec<PathBuf>,
        /// Print one JSON array instead of lines.
        #[arg(long)]
        json: bool,
    },
}

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inject {
            playlist,
            at_s,
            cue,
            reference,
            cues_file,
            timescale,
        } => gather_cues(&at_s, &cue, &reference, cues_file.as_deref())
            .and_then(|cues| inject(&playlist, &cues, timescale)),
        Command::List {
            playlist,
            segments,
            json,
        } => list(playlist.as_deref(), &segments, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ovation-cue: error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// One line of a cues file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CueSpec {
    at: f64,
    cue: String,
    #[serde(rename = "ref")]
    reference: String,
}

/// A cue from its id and `kind:id` reference, with errors a person can act on.
fn make_cue(id: &str, reference: &str) -> Result<Cue> {
    let (kind_name, reference_id) = reference
        .split_once(':')
        .ok_or_else(|| format!("--ref `{reference}` is not KIND:ID (e.g. poll:p3)"))?;
    let kind = InteractionKind::from_name(kind_name).ok_or_else(|| {
        format!("--ref `{reference}`: unknown kind `{kind_name}` (poll, quiz, product, qa, custom)")
    })?;
    Cue::new(id, kind, reference_id).map_err(|e| format!("cue `{id}` ({reference}): {e}"))
}

/// The cues of the command line and the cues file, checked, in the order given.
fn gather_cues(
    at_s: &[f64],
    ids: &[String],
    references: &[String],
    cues_file: Option<&Path>,
) -> Result<Vec<(f64, Cue)>> {
    if at_s.len() != ids.len() || ids.len() != references.len() {
        return Err(format!(
            "give --at, --cue and --ref the same number of times (got {}, {} and {})",
            at_s.len(),
            ids.len(),
            references.len()
        ));
    }
    let mut cues = Vec::new();
    for ((&at, id), reference) in at_s.iter().zip(ids).zip(references) {
        cues.push((
            check_media_time(at).map_err(|e| e.to_string())?,
            make_cue(id, reference)?,
        ));
    }
    if let Some(path) = cues_file {
        let bytes = read_limited(path, CUES_FILE_BYTES_MAX, "cues file")?;
        let specs: Vec<CueSpec> = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "cues file {}: {e} (expected [{{\"at\": 12.5, \"cue\": \"q3-open\", \"ref\": \"poll:p3\"}}, ...])",
                path.display()
            )
        })?;
        for spec in specs {
            let at = check_media_time(spec.at)
                .map_err(|e| format!("cues file {}: {e}", path.display()))?;
            cues.push((at, make_cue(&spec.cue, &spec.reference)?));
        }
    }
    if cues.is_empty() {
        return Err("no cues given: use --at/--cue/--ref or --cues-file".into());
    }
    if cues.len() > CUES_PER_RUN_MAX {
        return Err(format!(
            "{} cues given, more than the {CUES_PER_RUN_MAX} one run writes",
            cues.len()
        ));
    }
    Ok(cues)
}

/// Reads a file of at most `max_bytes`, checking the size before reading.
fn read_limited(path: &Path, max_bytes: usize, what: &str) -> Result<Vec<u8>> {
    let describe = |e: std::io::Error| format!("{what} {}: {e}", path.display());
    let size = fs::metadata(path).map_err(describe)?.len();
    if size > max_bytes as u64 {
        return Err(format!(
            "{what} {} is {size} bytes, over the limit of {max_bytes} bytes",
            path.display()
        ));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    File::open(path)
        .map_err(describe)?
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(describe)?;
    if bytes.len() > max_bytes {
        return Err(format!(
            "{what} {} grew past the limit of {max_bytes} bytes while being read",
            path.display()
        ));
    }
    Ok(bytes)
}

/// Replaces `path` with `bytes`: written to a temporary file beside it, flushed to disk,
/// given the old file's permissions, then renamed over it. On failure the old file is
/// untouched and the temporary file removed.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} has no file name", path.display()))?
        .to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.ovation-cue-{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::set_permissions(&temporary, fs::metadata(path)?.permissions())?;
        fs::rename(&temporary, path)
    };
    write().map_err(|e| {
        // Best effort: the temporary file may not exist.
        let _ = fs::remove_file(&temporary);
        format!("writing {}: {e}", path.display())
    })
}

/// The file a playlist URI names: relative to the playlist's folder unless absolute.
fn resolve(playlist: &Path, uri: &str) -> Result<PathBuf> {
    if uri.contains("://") {
        return Err(format!(
            "segment URI `{uri}` is not a local file; download the stream and run on its files"
        ));
    }
    let path = Path::new(uri);
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        playlist.parent().unwrap_or(Path::new("")).join(path)
    })
}

/// A segment `inject` rewrites in place must lie under the playlist's folder: a playlist
/// naming `../other/x.ts` or `/srv/x.ts` (one from elsewhere, or edited by someone else)
/// must not make it rewrite files outside the stream's own folder. Reading (`list`, an
/// init segment) goes anywhere the playlist says.
fn check_rewritable(uri: &str) -> Result {
    let outside = Path::new(uri).components().any(|part| {
        !matches!(
            part,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    if outside {
        return Err(format!(
            "segment URI `{uri}` leaves the playlist's folder, and inject rewrites segments in \
             place; put the segments under it"
        ));
    }
    Ok(())
}

fn read_playlist(path: &Path) -> Result<Playlist> {
    let bytes = read_limited(path, PLAYLIST_BYTES_MAX, "playlist")?;
    Playlist::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Where a discontinuity run starts on the segments' own clock.
#[derive(Debug, Clone, Copy)]
enum Anchor {
    /// Earliest PTS of the run's first TS segment.
    Ts { start_pts: u64 },
    /// `tfdt` of the run's first fMP4 segment, on `track`'s timeline.
    Fmp4 { start: u64, track: TrackTiming },
}

/// Reads segments, init segments and anchors of one playlist, each file once.
struct Stream<'a> {
    path: &'a Path,
    playlist: Playlist,
    inits: HashMap<String, TrackTiming>,
    anchors: HashMap<usize, Anchor>,
}

impl<'a> Stream<'a> {
    fn open(path: &'a Path) -> Result<Stream<'a>> {
        Ok(Stream {
            path,
            playlist: read_playlist(path)?,
            inits: HashMap::new(),
            anchors: HashMap::new(),
        })
    }

    fn segment_path(&self, index: usize) -> Result<PathBuf> {
        resolve(self.path, &self.playlist.segments[index].uri)
    }

    /// The segment's bytes and container, checked against the playlist (fMP4 segments
    /// have an EXT-X-MAP, TS segments none).
    fn read_segment(&self, index: usize) -> Result<(PathBuf, Vec<u8>, SegmentFormat)> {
        let path = self.segment_path(index)?;
        let bytes = read_limited(&path, SEGMENT_BYTES_MAX, "segment")?;
        let format =
            SegmentFormat::detect(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let has_map = self.playlist.segments[index].init_uri.is_some();
        match (format, has_map) {
            (SegmentFormat::Ts, false) | (SegmentFormat::Fmp4, true) => Ok((path, bytes, format)),
            (SegmentFormat::Ts, true) => Err(format!(
                "{}: an MPEG-TS segment under EXT-X-MAP (an fMP4 init segment)",
                path.display()
            )),
            (SegmentFormat::Fmp4, false) => Err(format!(
                "{}: an fMP4 segment without EXT-X-MAP, so no init segment to time it by",
                path.display()
            )),
        }
    }

    fn init_track(&mut self, index: usize) -> Result<TrackTiming> {
        let uri = self.playlist.segments[index]
            .init_uri
            .clone()
            .ok_or_else(|| "an fMP4 segment without EXT-X-MAP".to_owned())?;
        if let Some(track) = self.inits.get(&uri) {
            return Ok(*track);
        }
        let path = resolve(self.path, &uri)?;
        let bytes = read_limited(&path, SEGMENT_BYTES_MAX, "init segment")?;
        let track = mp4::init_track(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        self.inits.insert(uri, track);
        Ok(track)
    }

    /// The anchor of segment `index`'s run (read from the run's first segment, which is
    /// `bytes` when it is this one).
    fn anchor(&mut self, index: usize, bytes: &[u8]) -> Result<Anchor> {
        let first = self.playlist.segments[index].anchor;
        if let Some(anchor) = self.anchors.get(&first) {
            return Ok(*anchor);
        }
        let other;
        let (path, bytes) = if first == index {
            (self.segment_path(index)?, bytes)
        } else {
            let (path, read, _) = self.read_segment(first)?;
            other = read;
            (path, other.as_slice())
        };
        let in_file = |e: ovation_cue_tool::Error| format!("{}: {e}", path.display());
        let anchor = match SegmentFormat::detect(bytes).map_err(in_file)? {
            SegmentFormat::Ts => Anchor::Ts {
                start_pts: ts::segment_start(bytes).map_err(in_file)?,
            },
            SegmentFormat::Fmp4 => {
                let track = self.init_track(first)?;
                Anchor::Fmp4 {
                    start: mp4::segment_start(bytes, track.track_id).map_err(in_file)?,
                    track,
                }
            }
        };
        self.anchors.insert(first, anchor);
        Ok(anchor)
    }
}

fn describe_cue(cue: &Cue) -> String {
    format!(
        "{} ({}:{})",
        cue.id.as_str(),
        cue.reference.kind().as_str(),
        cue.reference.id()
    )
}

/// Whether `listing` already holds `cue` at `time`.
fn already_there(listing: &Listing, cue: &Cue, time: CueTime) -> bool {
    listing
        .cues
        .iter()
        .any(|c| c.time == time && c.cue.as_ref() == Ok(cue))
}

/// A segment's new bytes and what to tell about them.
struct Rewrite {
    path: PathBuf,
    /// `None` when every cue for the segment is there already.
    bytes: Option<Vec<u8>>,
    progress: Vec<String>,
}

/// Works out the new bytes of segment `index` with the cues `placed` in it.
fn rewrite_segment(
    stream: &mut Stream<'_>,
    index: usize,
    placed: &[(f64, Location, &Cue)],
    timescale: Option<u32>,
) -> Result<Rewrite> {
    let (path, bytes, format) = stream.read_segment(index)?;
    let in_file = |e: ovation_cue_tool::Error| format!("{}: {e}", path.display());
    let name = stream.playlist.segments[index].uri.clone();
    let existing = list_segment(&bytes).map_err(in_file)?.1;
    let anchor = stream.anchor(index, &bytes)?;
    let mut progress = Vec::new();
    let new_bytes = match (format, anchor) {
        (SegmentFormat::Ts, Anchor::Ts { start_pts }) => {
            let mut new = Vec::new();
            let mut shown = Vec::new();
            for &(at, location, cue) in placed {
                let pts = pts_at(start_pts, location.from_anchor_s);
                if already_there(&existing, cue, CueTime::Pts(pts)) {
                    progress.push(format!(
                        "{name}: {} at {at} s is already there (PTS {pts}), skipped",
                        describe_cue(cue)
                    ));
                    continue;
                }
                shown.push((at, pts, cue));
                new.push((pts, cue.clone()));
            }
            if new.is_empty() {
                None
            } else {
                let done = ts::inject(&bytes, &new).map_err(in_file)?;
                if done.stream_added {
                    progress.push(format!(
                        "{name}: PMT gained a timed ID3 stream (type 0x15) on PID {:#06x}; \
                         {} PMT section(s) rewritten",
                        done.pid, done.pmts_rewritten
                    ));
                }
                for ((at, pts, cue), (packet, count)) in shown.into_iter().zip(&done.inserted) {
                    progress.push(format!(
                        "{name}: {} at {at} s -> PTS {pts} ({:.6} s), {count} TS packet(s) on \
                         PID {:#06x} at packet {packet}",
                        describe_cue(cue),
                        pts as f64 / PTS_HZ as f64,
                        done.pid
                    ));
                }
                Some(done.segment)
            }
        }
        (SegmentFormat::Fmp4, Anchor::Fmp4 { start, track }) => {
            let timescale = timescale.unwrap_or(track.timescale);
            let mut emsgs = Vec::new();
            let mut shown = Vec::new();
            for &(at, location, cue) in placed {
                let time = ticks_at(start, track.timescale, location.from_anchor_s, timescale);
                let listed_time = CueTime::Emsg {
                    time: PresentationTime::Absolute(time),
                    timescale,
                };
                if already_there(&existing, cue, listed_time) {
                    progress.push(format!(
                        "{name}: {} at {at} s is already there (emsg time {time}/{timescale}), \
                         skipped",
                        describe_cue(cue)
                    ));
                    continue;
                }
                let emsg = mp4::cue_emsg(cue, timescale, time);
                shown.push((at, time, emsg.id, cue));
                emsgs.push(emsg);
            }
            if emsgs.is_empty() {
                None
            } else {
                let done = mp4::inject(&bytes, &emsgs).map_err(in_file)?;
                for (at, time, id, cue) in shown {
                    progress.push(format!(
                        "{name}: {} at {at} s -> emsg v1 presentation_time {time}/{timescale} \
                         ({:.6} s) on track {}, event id {id}, before the moof at byte {}",
                        describe_cue(cue),
                        time as f64 / f64::from(timescale),
                        track.track_id,
                        done.offset
                    ));
                }
                Some(done.segment)
            }
        }
        _ => {
            return Err(format!(
                "{}: its container differs from its discontinuity run's first segment",
                path.display()
            ))
        }
    };
    Ok(Rewrite {
        path,
        bytes: new_bytes,
        progress,
    })
}

fn inject(playlist_path: &Path, cues: &[(f64, Cue)], timescale: Option<u32>) -> Result {
    if timescale == Some(0) {
        return Err("--timescale must be at least 1".into());
    }
    let mut stream = Stream::open(playlist_path)?;
    let mut by_segment: BTreeMap<usize, Vec<(f64, Location, &Cue)>> = BTreeMap::new();
    for (at, cue) in cues {
        let location = stream.playlist.locate(*at).map_err(|e| {
            format!(
                "cue {}: {e} ({})",
                describe_cue(cue),
                playlist_path.display()
            )
        })?;
        by_segment
            .entry(location.segment)
            .or_default()
            .push((*at, location, cue));
    }
    // First every segment is read and rewritten in memory only, so that bad input (a
    // time outside the stream, a missing or malformed segment) fails the run before any
    // file changes; segments are not all held at once, so they are worked out again
    // when written.
    for (&index, placed) in &by_segment {
        check_rewritable(&stream.playlist.segments[index].uri)?;
        rewrite_segment(&mut stream, index, placed, timescale)?;
    }
    for (&index, placed) in &by_segment {
        let rewrite = rewrite_segment(&mut stream, index, placed, timescale)?;
        if let Some(bytes) = &rewrite.bytes {
            write_atomically(&rewrite.path, bytes)?;
        }
        for line in rewrite.progress {
            println!("{line}");
        }
    }
    Ok(())
}

/// One listed cue, ready to print.
struct Row {
    segment: String,
    offset: usize,
    /// Media time (playlist) or the segment's clock in seconds (files).
    time_s: Option<f64>,
    clock: Value,
    cue: std::result::Result<Cue, String>,
}

fn clock_of(time: CueTime) -> Value {
    match time {
        CueTime::Pts(pts) => json!({ "pts": pts }),
        CueTime::Emsg {
            time: PresentationTime::Absolute(t),
            timescale,
        } => json!({ "presentation_time": t, "timescale": timescale }),
        CueTime::Emsg {
            time: PresentationTime::Delta(d),
            timescale,
        } => json!({ "presentation_time_delta": d, "timescale": timescale }),
        CueTime::Unknown => Value::Null,
    }
}

/// Seconds on the segment's own clock (emsg version 0 has only a delta: none).
fn own_seconds(time: CueTime) -> Option<f64> {
    match time {
        CueTime::Pts(pts) => Some(pts as f64 / PTS_HZ as f64),
        CueTime::Emsg { time, timescale } => match mp4::emsg_seconds(time, timescale)? {
            (seconds, false) => Some(seconds),
            (_, true) => None,
        },
        CueTime::Unknown => None,
    }
}

fn rows_of(segment: &str, listing: Listing, time_s: impl Fn(CueTime) -> Option<f64>) -> Vec<Row> {
    if let Some(stopped) = &listing.stopped {
        eprintln!("ovation-cue: warning: {segment}: listing stopped early: {stopped}");
    }
    listing
        .cues
        .into_iter()
        .map(|c| Row {
            segment: segment.to_owned(),
            offset: c.offset,
            time_s: time_s(c.time),
            clock: clock_of(c.time),
            cue: c.cue.map_err(|e| e.to_string()),
        })
        .collect()
}

fn list(playlist: Option<&Path>, segments: &[PathBuf], as_json: bool) -> Result {
    let mut rows = Vec::new();
    if let Some(playlist_path) = playlist {
        let mut stream = Stream::open(playlist_path)?;
        for index in 0..stream.playlist.segments.len() {
            let (path, bytes, _) = stream.read_segment(index)?;
            let (_, listing) =
                list_segment(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            if listing.cues.is_empty() {
                if let Some(stopped) = &listing.stopped {
                    eprintln!("ovation-cue: warning: {}: {stopped}", path.display());
                }
                continue;
            }
            let anchor = stream.anchor(index, &bytes)?;
            let segment = &stream.playlist.segments[index];
            let anchor_start_s = stream.playlist.segments[segment.anchor].start_s;
            let segment_start_s = segment.start_s;
            let to_media = |time: CueTime| -> Option<f64> {
                match (time, anchor) {
                    (CueTime::Pts(pts), Anchor::Ts { start_pts }) => {
                        Some(anchor_start_s + seconds_from_pts(start_pts, pts))
                    }
                    (CueTime::Emsg { time, timescale }, Anchor::Fmp4 { start, track }) => {
                        match mp4::emsg_seconds(time, timescale)? {
                            (seconds, false) => Some(
                                anchor_start_s + seconds
                                    - start as f64 / f64::from(track.timescale),
                            ),
                            // Version 0: from the segment's earliest presentation time.
                            (delta, true) => Some(segment_start_s + delta),
                        }
                    }
                    _ => None,
                }
            };
            rows.extend(rows_of(&segment.uri.clone(), listing, to_media));
        }
    } else {
        for path in segments {
            let bytes = read_limited(path, SEGMENT_BYTES_MAX, "segment")?;
            let (_, listing) =
                list_segment(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            rows.extend(rows_of(&path.display().to_string(), listing, own_seconds));
        }
    }
    if as_json {
        let array: Vec<Value> = rows
            .iter()
            .map(|row| {
                let mut object = json!({
                    "segment": row.segment,
                    "offset": row.offset,
                    "time_s": row.time_s,
                    "clock": row.clock,
                });
                match &row.cue {
                    Ok(cue) => {
                        object["cue"] = json!(cue.id.as_str());
                        object["ref"] = json!(format!(
                            "{}:{}",
                            cue.reference.kind().as_str(),
                            cue.reference.id()
                        ));
                    }
                    Err(error) => object["error"] = json!(error),
                }
                object
            })
            .collect();
        println!("{}", Value::Array(array));
    } else {
        for row in &rows {
            let time = row
                .time_s
                .map_or_else(|| "?".to_owned(), |t| format!("{t:.3} s"));
            match &row.cue {
                Ok(cue) => println!("{time}\t{}\t{} byte {}\t{}", describe_cue(cue), row.segment, row.offset, row.clock),
                Err(error) => eprintln!(
                    "ovation-cue: warning: {} byte {}: timed metadata that is not an Ovation cue: {error}",
                    row.segment, row.offset
                ),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inject_rewrites_only_segments_within_the_playlists_folder() {
        let playlist = Path::new("/streams/show/index.m3u8");
        assert_eq!(
            resolve(playlist, "seg-1.ts").unwrap(),
            Path::new("/streams/show/seg-1.ts")
        );
        for uri in ["seg-1.ts", "./hd/seg-1.ts"] {
            assert!(check_rewritable(uri).is_ok(), "{uri}");
        }
        // Read from anywhere (list, a shared init segment); rewritten only within.
        for uri in ["../shared/init.mp4", "/srv/hls/seg-1.ts"] {
            assert!(resolve(playlist, uri).is_ok(), "{uri}");
        }
        for uri in [
            "../other/seg-1.ts",
            "hd/../../other/seg-1.ts",
            "/srv/hls/seg-1.ts",
        ] {
            assert!(check_rewritable(uri).is_err(), "{uri}");
        }
        assert!(resolve(playlist, "https://cdn.example/seg-1.ts").is_err());
    }
}
