//! End to end on real streams: ffmpeg makes an HLS stream (MPEG-TS, and fMP4) at test
//! time, the `ovation-cue` binary injects cues into it, and ffprobe — a demuxer this
//! project did not write — must find the timed ID3 stream and its packets at the asked
//! times, with the audio and video untouched; `ovation-cue list` must read the cues back.
//!
//! ffmpeg and ffprobe are required: `cargo xtask setup` installs them. Without them these
//! tests fail (they do not skip).

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One frame at the test stream's 25 frames per second.
const FRAME_S: f64 = 0.04;
/// How far from the asked time an ID3 packet's PTS may be: the issue allows a frame;
/// the tool places cues to the 90 kHz tick, so hold it to a millisecond.
const PTS_TOLERANCE_S: f64 = 0.001;
const _: () = assert!(PTS_TOLERANCE_S < FRAME_S);

fn require_ffmpeg() {
    for tool in ["ffmpeg", "ffprobe"] {
        let found = Command::new(tool)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "`{tool}` is not installed or does not run: these tests need ffmpeg and ffprobe; \
             run `cargo xtask setup` (it installs Debian's ffmpeg)"
        );
    }
}

/// A fresh folder under target/ for one test.
fn work_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap();
    }
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(command: &mut Command) -> Output {
    let shown = format!("{command:?}");
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
}

fn run_ok(command: &mut Command) -> String {
    let shown = format!("{command:?}");
    let output = run(command);
    assert!(
        output.status.success(),
        "{shown} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The 6-second test stream of the issue: 320x240 test pattern at 25 fps (a keyframe
/// every second), a 440 Hz tone in AAC, 2-second segments, as VOD.
fn make_stream(dir: &Path, fmp4: bool) {
    run_ok(
        Command::new("ffmpeg")
            .current_dir(dir)
            .args(ovation_cue_tool::test_stream_ffmpeg_args(
                6, "320x240", fmp4,
            ))
            .arg("index.m3u8"),
    );
}

fn ovation_cue(dir: &Path, args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_ovation-cue"))
        .current_dir(dir)
        .args(args))
}

fn ovation_cue_ok(dir: &Path, args: &[&str]) -> String {
    let output = ovation_cue(dir, args);
    assert!(
        output.status.success(),
        "ovation-cue {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn ffprobe(dir: &Path, args: &[&str]) -> Value {
    let stdout = run_ok(
        Command::new("ffprobe")
            .current_dir(dir)
            .args(["-v", "error", "-of", "json"])
            .args(args),
    );
    serde_json::from_str(&stdout).unwrap()
}

fn as_f64(value: &Value) -> f64 {
    match value {
        Value::String(s) => s.parse().unwrap(),
        other => other.as_f64().unwrap(),
    }
}

/// Packets per stream, as ffprobe counts them.
fn packet_counts(dir: &Path, file: &str) -> Vec<(String, String)> {
    let probe = ffprobe(
        dir,
        &[
            "-count_packets",
            "-show_entries",
            "stream=codec_type,nb_read_packets",
            file,
        ],
    );
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["codec_type"].as_str().unwrap().to_owned(),
                s["nb_read_packets"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Where media time 0 is on the PTS clock, in seconds, by hls.js's rule (its
/// `initPTS`): the lower of the first audio packet's PTS and the first video packet's DTS
/// of the first segment, as ffprobe reads them.
fn stream_origin_s(dir: &Path, first_segment: &str) -> f64 {
    let probe = ffprobe(
        dir,
        &[
            "-show_entries",
            "packet=codec_type,pts_time,dts_time",
            "-show_packets",
            first_segment,
        ],
    );
    let packets = probe["packets"].as_array().unwrap();
    let first = |kind: &str, field: &str| {
        let packet = packets.iter().find(|p| p["codec_type"] == kind).unwrap();
        as_f64(&packet[field])
    };
    let (video_dts, audio_pts) = (first("video", "dts_time"), first("audio", "pts_time"));
    // ffmpeg's H.264 has B-frames: decoding starts before presentation.
    assert!(video_dts < first("video", "pts_time"));
    video_dts.min(audio_pts)
}

/// The bytes of an ffprobe `-show_data` hex dump ("00000000: 4944 3304 ...  ID3.").
fn dump_bytes(dump: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for line in dump.lines() {
        let Some((_, rest)) = line.split_once(": ") else {
            continue;
        };
        let hex: String = rest
            .split("  ")
            .next()
            .unwrap()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        for pair in hex.as_bytes().chunks(2) {
            bytes.push(u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap());
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `list --playlist --json`, as (cue, ref, media time) sorted by time.
fn listed(dir: &Path) -> Vec<(String, String, f64)> {
    let stdout = ovation_cue_ok(dir, &["list", "--playlist", "index.m3u8", "--json"]);
    let rows: Value = serde_json::from_str(&stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            assert!(row.get("error").is_none(), "{row}");
            (
                row["cue"].as_str().unwrap().to_owned(),
                row["ref"].as_str().unwrap().to_owned(),
                row["time_s"].as_f64().unwrap(),
            )
        })
        .collect()
}

const CUES: [(&str, &str, &str, &str, f64); 2] = [
    ("0.5", "q1-open", "poll:p1", "index0", 0.5),
    ("3.2", "quiz-7", "quiz:z7", "index1", 3.2),
];

fn inject_args() -> Vec<&'static str> {
    let mut args = vec!["inject", "--playlist", "index.m3u8"];
    for (at, cue, reference, _, _) in CUES {
        args.extend(["--at", at, "--cue", cue, "--ref", reference]);
    }
    args
}

fn assert_listed(dir: &Path) {
    let found = listed(dir);
    assert_eq!(found.len(), CUES.len(), "{found:?}");
    for ((cue, reference, time_s), (_, want_cue, want_ref, _, want_s)) in found.iter().zip(CUES) {
        assert_eq!((cue.as_str(), reference.as_str()), (want_cue, want_ref));
        assert!(
            (time_s - want_s).abs() < 0.001,
            "{cue} listed at {time_s} s, injected at {want_s} s"
        );
    }
}

#[test]
fn ts_cues_are_timed_id3_that_ffprobe_reads_at_their_times() {
    require_ffmpeg();
    let dir = work_dir("ffmpeg-ts");
    make_stream(&dir, false);
    let segments = ["index0.ts", "index1.ts", "index2.ts"];
    let pristine: Vec<Vec<u8>> = segments
        .iter()
        .map(|s| fs::read(dir.join(s)).unwrap())
        .collect();
    let counts: Vec<_> = segments.iter().map(|s| packet_counts(&dir, s)).collect();
    let start_s = stream_origin_s(&dir, "index0.ts");
    assert!(listed(&dir).is_empty());

    let progress = ovation_cue_ok(&dir, &inject_args());
    assert!(
        progress.contains("index0.ts: q1-open (poll:p1) at 0.5 s -> PTS"),
        "{progress}"
    );
    assert!(
        progress.contains("index1.ts: quiz-7 (quiz:z7) at 3.2 s -> PTS"),
        "{progress}"
    );
    assert!(progress.contains("on PID 0x0102"), "{progress}");

    // The segment without a cue is untouched.
    assert_eq!(fs::read(dir.join("index2.ts")).unwrap(), pristine[2]);
    for (index, (_, cue, reference, segment, at_s)) in CUES.iter().enumerate() {
        let file = format!("{segment}.ts");
        // ffprobe sees the timed ID3 stream that the PMT announces.
        let streams = ffprobe(&dir, &["-show_streams", &file]);
        let data: Vec<&Value> = streams["streams"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["codec_type"] == "data")
            .collect();
        assert_eq!(data.len(), 1, "{streams}");
        assert_eq!(data[0]["codec_name"], "timed_id3", "{streams}");
        assert_eq!(data[0]["codec_tag_string"], "ID3 ", "{streams}");
        assert_eq!(data[0]["id"], "0x102", "{streams}");

        // One ID3 packet, at the asked media time, carrying the cue.
        let packets = ffprobe(
            &dir,
            &["-show_packets", "-show_data", "-select_streams", "d", &file],
        );
        let packets = packets["packets"].as_array().unwrap();
        assert_eq!(packets.len(), 1, "{packets:?}");
        let pts_s = as_f64(&packets[0]["pts_time"]);
        assert!(
            (pts_s - (start_s + at_s)).abs() <= PTS_TOLERANCE_S,
            "{cue}: ID3 PTS {pts_s} s, wanted {start_s} + {at_s} s"
        );
        let payload = format!("v=1;cue={cue};ref={reference}");
        let data = dump_bytes(packets[0]["data"].as_str().unwrap());
        assert!(
            contains(&data, payload.as_bytes()),
            "{cue}: ffprobe's packet lacks {payload}"
        );
        assert!(contains(&data, b"TXXX"), "{cue}: no TXXX frame");

        // Audio and video are all still there: ffprobe counts the same packets, plus
        // the one ID3 packet.
        let mut after = packet_counts(&dir, &file);
        assert_eq!(after.pop(), Some(("data".to_owned(), "1".to_owned())));
        assert_eq!(after, counts[index]);
    }
    assert_listed(&dir);

    // The same command again changes nothing.
    let rewritten: Vec<Vec<u8>> = segments
        .iter()
        .map(|s| fs::read(dir.join(s)).unwrap())
        .collect();
    let again = ovation_cue_ok(&dir, &inject_args());
    assert_eq!(again.matches("already there").count(), 2, "{again}");
    for (segment, bytes) in segments.iter().zip(&rewritten) {
        assert_eq!(&fs::read(dir.join(segment)).unwrap(), bytes, "{segment}");
    }
    assert_listed(&dir);

    // `list` on segment files gives each cue's PTS.
    let stdout = ovation_cue_ok(
        &dir,
        &["list", "--json", "index0.ts", "index1.ts", "index2.ts"],
    );
    let rows: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    assert!(
        (rows[0]["time_s"].as_f64().unwrap() - (start_s + 0.5)).abs() < 0.001,
        "{rows}"
    );
}

#[test]
fn bad_input_is_refused_and_nothing_is_written() {
    require_ffmpeg();
    let dir = work_dir("ffmpeg-errors");
    make_stream(&dir, false);
    let before: Vec<Vec<u8>> = ["index0.ts", "index1.ts", "index2.ts"]
        .iter()
        .map(|s| fs::read(dir.join(s)).unwrap())
        .collect();
    let cases: [(&[&str], &str); 6] = [
        (
            &[
                "inject",
                "--playlist",
                "index.m3u8",
                "--at",
                "0.5",
                "--cue",
                "q1",
                "--ref",
                "poll:p1",
                "--at",
                "6.5",
                "--cue",
                "q2",
                "--ref",
                "poll:p2",
            ],
            "outside the stream",
        ),
        (
            &[
                "inject",
                "--playlist",
                "index.m3u8",
                "--at",
                "1",
                "--cue",
                "bad id!",
                "--ref",
                "poll:p1",
            ],
            "cue id",
        ),
        (
            &[
                "inject",
                "--playlist",
                "index.m3u8",
                "--at",
                "1",
                "--cue",
                "q1",
                "--ref",
                "vote:p1",
            ],
            "unknown kind `vote`",
        ),
        (
            &[
                "inject",
                "--playlist",
                "missing.m3u8",
                "--at",
                "1",
                "--cue",
                "q1",
                "--ref",
                "poll:p1",
            ],
            "missing.m3u8",
        ),
        (
            &[
                "inject",
                "--playlist",
                "index.m3u8",
                "--at",
                "-1",
                "--cue",
                "q1",
                "--ref",
                "poll:p1",
            ],
            "not a number of seconds",
        ),
        (
            &[
                "inject",
                "--playlist",
                "index.m3u8",
                "--at",
                "1",
                "--cue",
                "q1",
            ],
            "same number of times",
        ),
    ];
    for (args, message) in cases {
        let output = ovation_cue(&dir, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains(message),
            "{args:?}: {stderr:?} lacks {message:?}"
        );
    }
    // A segment that is not there: the run fails before it writes the good cue's
    // segment either.
    fs::remove_file(dir.join("index2.ts")).unwrap();
    let output = ovation_cue(
        &dir,
        &[
            "inject",
            "--playlist",
            "index.m3u8",
            "--at",
            "0.5",
            "--cue",
            "fine",
            "--ref",
            "poll:p1",
            "--at",
            "5",
            "--cue",
            "q",
            "--ref",
            "qa:a",
        ],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("index2.ts"));
    for (segment, bytes) in ["index0.ts", "index1.ts"].iter().zip(&before) {
        assert_eq!(
            &fs::read(dir.join(segment)).unwrap(),
            bytes,
            "{segment} changed"
        );
    }
    // No temporary files are left behind.
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The top-level boxes of an ISO BMFF file: (type, start, size).
fn boxes(bytes: &[u8]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = String::from_utf8_lossy(&bytes[pos + 4..pos + 8]).into_owned();
        assert!(size >= 8, "box {kind} at {pos} has size {size}");
        out.push((kind, pos, size));
        pos += size;
    }
    assert_eq!(pos, bytes.len(), "boxes do not end at the end of the file");
    out
}

#[test]
fn fmp4_cues_are_emsg_boxes_that_list_reads_and_ffprobe_skips() {
    require_ffmpeg();
    let dir = work_dir("ffmpeg-fmp4");
    make_stream(&dir, true);
    let segments = ["index0.m4s", "index1.m4s", "index2.m4s"];
    let init = fs::read(dir.join("init.mp4")).unwrap();
    let pristine: Vec<Vec<u8>> = segments
        .iter()
        .map(|s| fs::read(dir.join(s)).unwrap())
        .collect();
    let counts: Vec<_> = segments
        .iter()
        .zip(&pristine)
        .map(|(segment, bytes)| {
            let whole = format!("whole-{segment}.mp4");
            fs::write(dir.join(&whole), [init.as_slice(), bytes].concat()).unwrap();
            packet_counts(&dir, &whole)
        })
        .collect();

    let progress = ovation_cue_ok(&dir, &inject_args());
    assert!(
        progress.contains("index0.m4s: q1-open (poll:p1) at 0.5 s -> emsg v1"),
        "{progress}"
    );
    assert!(
        progress.contains("index1.m4s: quiz-7 (quiz:z7) at 3.2 s -> emsg v1"),
        "{progress}"
    );
    assert_eq!(fs::read(dir.join("index2.m4s")).unwrap(), pristine[2]);
    assert_listed(&dir);

    for (index, (_, cue, reference, segment, _)) in CUES.iter().enumerate() {
        let file = format!("{segment}.m4s");
        let bytes = fs::read(dir.join(&file)).unwrap();
        // The emsg box sits right before the moof; the boxes still tile the file; every
        // byte after the emsg is the old segment's.
        let layout = boxes(&bytes);
        let emsg = layout
            .iter()
            .position(|b| b.0 == "emsg")
            .expect("an emsg box");
        assert_eq!(layout[emsg + 1].0, "moof", "{layout:?}");
        assert!(layout[..emsg].iter().all(|b| b.0 != "moof"), "{layout:?}");
        let (_, emsg_start, emsg_size) = layout[emsg];
        assert_eq!(
            &bytes[emsg_start + emsg_size..],
            &pristine[index][emsg_start..]
        );
        let payload = format!("v=1;cue={cue};ref={reference}");
        assert!(contains(
            &bytes[emsg_start..emsg_start + emsg_size],
            b"https://aomedia.org/emsg/ID3\0"
        ));
        assert!(contains(
            &bytes[emsg_start..emsg_start + emsg_size],
            payload.as_bytes()
        ));

        // ffprobe still reads every audio and video packet of init + segment.
        let whole = format!("whole-{file}.mp4");
        fs::write(dir.join(&whole), [init.as_slice(), &bytes].concat()).unwrap();
        assert_eq!(packet_counts(&dir, &whole), counts[index], "{file}");
    }

    // Again: nothing changes.
    let again = ovation_cue_ok(&dir, &inject_args());
    assert_eq!(again.matches("already there").count(), 2, "{again}");
    assert_listed(&dir);
}
