//! The checked shape of a run (`Plan`): every option within its limit, viewers spread
//! over the rooms, senders per room, the room ids; and the open-file limit raised to fit.

use super::accounting::Sampling;
use super::{
    FanoutConfig, Target, COMMENTS_MAX, DURATION_S_MAX, OPEN_FILES_HEADROOM, RATE_PER_S_MAX,
    ROOMS_MAX, SENDER_COMMENTS_PER_S, TRACKING_BYTES_MAX, WARMUP_S_MAX,
};
use crate::VIEWERS_MAX;
use ovation_proto::limits::{room_sockets_max, shards_for_audience, CONNECTIONS_PER_ROOM_MAX};
use ovation_proto::RoomId;

/// The checked shape of a run.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Plan {
    pub(super) room_ids: Vec<String>,
    /// Initial viewers per room (sums to `viewers`).
    pub(super) viewers_per_room: Vec<usize>,
    pub(super) senders_per_room: usize,
    pub(super) expected_audience: u64,
    /// Our sharded rooms show a comment to its sender only above their per-tick cap.
    pub(super) sampling: Sampling,
}

fn check_rate(name: &str, value: f64) -> Result<(), String> {
    if !(0.0..=RATE_PER_S_MAX).contains(&value) {
        return Err(format!("{name} is 0..={RATE_PER_S_MAX}, not {value}"));
    }
    Ok(())
}

pub(super) fn plan(config: &FanoutConfig) -> Result<Plan, String> {
    if config.rooms == 0 || config.rooms > ROOMS_MAX {
        return Err(format!("rooms is 1..={ROOMS_MAX}, not {}", config.rooms));
    }
    if config.viewers > VIEWERS_MAX {
        return Err(format!(
            "viewers is at most {VIEWERS_MAX} per process, not {}: run several generators",
            config.viewers
        ));
    }
    if config.viewers < config.rooms {
        return Err(format!(
            "viewers ({}) must be at least rooms ({}): every room needs a viewer",
            config.viewers, config.rooms
        ));
    }
    check_rate("comments-per-s", config.comments_per_s)?;
    check_rate("likes-per-s", config.likes_per_s)?;
    check_rate("churn-per-s", config.churn_per_s)?;
    if config.duration_s == 0 || config.duration_s > DURATION_S_MAX {
        return Err(format!(
            "duration-s is 1..={DURATION_S_MAX}, not {}",
            config.duration_s
        ));
    }
    if config.warmup_s > WARMUP_S_MAX {
        return Err(format!(
            "warmup-s is 0..={WARMUP_S_MAX}, not {}",
            config.warmup_s
        ));
    }
    let viewers_per_room: Vec<usize> = (0..config.rooms)
        .map(|room| {
            config.viewers / config.rooms + usize::from(room < config.viewers % config.rooms)
        })
        .collect();
    let smallest_room = *viewers_per_room.iter().min().expect("rooms >= 1");
    let largest_room = *viewers_per_room.iter().max().expect("rooms >= 1");
    // A sharded room takes that many sockets per shard.
    let audience = config.expected_audience.unwrap_or(largest_room as u64);
    let shards = config
        .shards
        .unwrap_or_else(|| shards_for_audience(audience));
    let sampling = if config.target == Target::Ovation && shards > 0 {
        Sampling::SenderOnlyAboveCap
    } else {
        Sampling::Never
    };
    let sockets_max = room_sockets_max(shards);
    if config.target == Target::Ovation && largest_room > sockets_max {
        return Err(format!(
            "{largest_room} viewers in one room, but our server takes at most \
             {CONNECTIONS_PER_ROOM_MAX} sockets per room or shard ({shards} shard(s)): \
             use more rooms or shards"
        ));
    }
    let senders_per_room = match config.senders_per_room {
        _ if config.comments_per_s == 0.0 => 0,
        Some(0) => return Err("senders-per-room must be at least 1 when comments are sent".into()),
        Some(senders) if senders > smallest_room => {
            return Err(format!(
                "senders-per-room ({senders}) is more than the viewers of the smallest room \
                 ({smallest_room})"
            ))
        }
        Some(senders) => senders,
        None => ((config.comments_per_s / SENDER_COMMENTS_PER_S).ceil() as usize)
            .clamp(1, smallest_room),
    };
    let run_s = (config.warmup_s + config.duration_s) as f64;
    let comments_per_room = (config.comments_per_s * run_s).ceil() as u64 + 1;
    let comments = comments_per_room * config.rooms as u64;
    if comments > COMMENTS_MAX {
        return Err(format!(
            "this run would send {comments} comments, more than {COMMENTS_MAX}: shorten it or \
             lower comments-per-s"
        ));
    }
    let viewers_ever = config.viewers as u64 + (config.churn_per_s * run_s).ceil() as u64;
    let tracking_bytes = viewers_ever * comments_per_room / 8;
    if tracking_bytes > TRACKING_BYTES_MAX {
        return Err(format!(
            "tracking deliveries would take {} MiB, more than {} MiB: fewer viewers, a shorter \
             run or fewer comments per room",
            tracking_bytes >> 20,
            TRACKING_BYTES_MAX >> 20
        ));
    }
    let room_ids: Vec<String> = (0..config.rooms)
        .map(|room| format!("{}-{room}", config.room_prefix))
        .collect();
    // Ids go into URLs and our admin API unescaped: hold every target to our id rules.
    for id in &room_ids {
        RoomId::parse(id).map_err(|e| format!("room id {id:?}: {e}"))?;
    }
    if config.target != Target::Ovation
        && !(config.url_template.starts_with("ws://") && config.url_template.contains("{room}"))
    {
        return Err(format!(
            "url-template must be a ws:// URL with a {{room}} placeholder, not {:?}",
            config.url_template
        ));
    }
    let expected_audience = config
        .expected_audience
        .unwrap_or(config.viewers.div_ceil(config.rooms) as u64);
    Ok(Plan {
        room_ids,
        viewers_per_room,
        senders_per_room,
        expected_audience,
        sampling,
    })
}

/// Raises the open-file soft limit to the hard limit and checks it fits the viewers.
pub(super) fn raise_open_files_limit(viewers: usize) -> Result<(), String> {
    let needed = viewers as u64 + OPEN_FILES_HEADROOM;
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .map_err(|e| format!("raising the open-file limit: {e}"))?;
    if needed > limit {
        return Err(format!(
            "{viewers} viewers need {needed} open files but the hard limit is {limit}: raise \
             it (`ulimit -Hn`, or LimitNOFILE) or run fewer viewers per process"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Minter;
    use ovation_auth::{dev, SigningKey};

    fn config() -> FanoutConfig {
        FanoutConfig {
            target: Target::Json,
            base: "http://127.0.0.1:8787".into(),
            url_template: Target::Json.default_url_template().into(),
            rooms: 3,
            viewers: 10,
            comments_per_s: 20.0,
            likes_per_s: 0.0,
            churn_per_s: 0.0,
            duration_s: 20,
            warmup_s: 2,
            seed: 1,
            senders_per_room: None,
            room_prefix: "weur-fanout-test".into(),
            expected_audience: None,
            shards: None,
            minter: Minter {
                key: SigningKey::hs256(dev::HS256_SECRET.as_bytes()),
                tenant: dev::TENANT.into(),
            },
        }
    }

    #[test]
    fn viewers_spread_evenly_and_senders_default_to_half_a_comment_per_second_each() {
        let even = plan(&FanoutConfig {
            viewers: 300,
            ..config()
        })
        .unwrap();
        assert_eq!(even.viewers_per_room, [100, 100, 100]);
        assert_eq!(even.senders_per_room, 40);
        assert_eq!(even.expected_audience, 100);
        assert_eq!(even.room_ids[2], "weur-fanout-test-2");

        // Uneven split, and a default capped by the smallest room.
        let uneven = plan(&config()).unwrap();
        assert_eq!(uneven.viewers_per_room, [4, 3, 3]);
        assert_eq!(uneven.senders_per_room, 3);
        assert_eq!(uneven.expected_audience, 4);

        let silent = plan(&FanoutConfig {
            comments_per_s: 0.0,
            ..config()
        })
        .unwrap();
        assert_eq!(silent.senders_per_room, 0);
    }

    #[test]
    fn bad_shapes_are_refused_with_the_limit_named() {
        let refusals = [
            (
                FanoutConfig {
                    rooms: 0,
                    ..config()
                },
                "rooms is 1..=",
            ),
            (
                FanoutConfig {
                    viewers: 2,
                    ..config()
                },
                "at least rooms",
            ),
            (
                FanoutConfig {
                    viewers: VIEWERS_MAX + 1,
                    ..config()
                },
                "per process",
            ),
            (
                FanoutConfig {
                    comments_per_s: -1.0,
                    ..config()
                },
                "comments-per-s is",
            ),
            (
                FanoutConfig {
                    likes_per_s: f64::NAN,
                    ..config()
                },
                "likes-per-s is",
            ),
            (
                FanoutConfig {
                    duration_s: 0,
                    ..config()
                },
                "duration-s is",
            ),
            (
                FanoutConfig {
                    senders_per_room: Some(4),
                    ..config()
                },
                "smallest room",
            ),
            (
                FanoutConfig {
                    senders_per_room: Some(0),
                    ..config()
                },
                "at least 1",
            ),
            (
                FanoutConfig {
                    room_prefix: "eu-load".into(),
                    ..config()
                },
                "region prefix",
            ),
            (
                FanoutConfig {
                    room_prefix: "weur-Load".into(),
                    ..config()
                },
                "a-z, 0-9",
            ),
            (
                FanoutConfig {
                    url_template: "ws://host/x".into(),
                    ..config()
                },
                "{room}",
            ),
            (
                FanoutConfig {
                    viewers: 100_000,
                    rooms: 1,
                    duration_s: 3_600,
                    comments_per_s: 1_000.0,
                    ..config()
                },
                "tracking deliveries",
            ),
        ];
        for (config, expected) in refusals {
            let error = plan(&config).unwrap_err();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
        let crowded = plan(&FanoutConfig {
            target: Target::Ovation,
            viewers: CONNECTIONS_PER_ROOM_MAX + 1,
            rooms: 1,
            shards: Some(1),
            ..config()
        });
        assert!(crowded.unwrap_err().contains("sockets per room"));
        // Without `--shards` that audience makes a big room: its shards take them.
        let big = plan(&FanoutConfig {
            target: Target::Ovation,
            viewers: CONNECTIONS_PER_ROOM_MAX + 1,
            rooms: 1,
            ..config()
        });
        assert!(big.is_ok(), "{big:?}");
        // Our server needs no URL template.
        assert!(plan(&FanoutConfig {
            target: Target::Ovation,
            url_template: String::new(),
            ..config()
        })
        .is_ok());
    }
}
