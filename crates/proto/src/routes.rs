//! The edge's public HTTP routes, as data: the Worker dispatches on [`match_route`], and
//! the OpenAPI document (`edge-worker/openapi.json`) is checked against [`ROUTES`] (a test
//! fails when a route is added to one and not the other).

use alloc::vec::Vec;

/// The methods the public API uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
}

impl HttpMethod {
    /// The lower-case name OpenAPI uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "get",
            HttpMethod::Post => "post",
            HttpMethod::Put => "put",
        }
    }
}

/// One public route; what it does is documented in the OpenAPI document under its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    OpenApi,
    Socket,
    State,
    Events,
    Part,
    Replay,
    Stats,
    CreateRoom,
    ListRooms,
    EndRoom,
    Messages,
    Direct,
    PutPart,
    CreatePoll,
    ClosePoll,
    RevealPoll,
    CreateQuiz,
    NextQuestion,
    CloseQuestion,
    EndQuiz,
    PinProduct,
    UnpinProduct,
    QaSettings,
    QaApprove,
    QaAnswer,
    QaHide,
    Moderation,
    Commands,
    Shards,
    Audit,
}

/// A route's method and path; `{name}` is one non-empty path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: HttpMethod,
    /// In OpenAPI's form, e.g. `/v1/rooms/{room}/state`.
    pub path: &'static str,
    pub route: Route,
}

const fn spec(method: HttpMethod, path: &'static str, route: Route) -> RouteSpec {
    RouteSpec {
        method,
        path,
        route,
    }
}

use HttpMethod::{Get, Post, Put};

/// Every public route of the edge.
pub const ROUTES: [RouteSpec; 30] = [
    spec(Get, "/v1/openapi.json", Route::OpenApi),
    spec(Get, "/v1/rooms/{room}/ws", Route::Socket),
    spec(Get, "/v1/rooms/{room}/state", Route::State),
    spec(Get, "/v1/rooms/{room}/events", Route::Events),
    spec(Get, "/v1/rooms/{room}/parts/{part}", Route::Part),
    spec(Get, "/v1/rooms/{room}/replay", Route::Replay),
    spec(Get, "/v1/rooms/{room}/stats", Route::Stats),
    spec(Post, "/v1/rooms", Route::CreateRoom),
    spec(Get, "/v1/rooms", Route::ListRooms),
    spec(Post, "/v1/rooms/{room}/end", Route::EndRoom),
    spec(Post, "/v1/rooms/{room}/messages", Route::Messages),
    spec(Post, "/v1/rooms/{room}/direct", Route::Direct),
    spec(Put, "/v1/rooms/{room}/parts/{part}", Route::PutPart),
    spec(Post, "/v1/rooms/{room}/polls", Route::CreatePoll),
    spec(
        Post,
        "/v1/rooms/{room}/polls/{poll}/close",
        Route::ClosePoll,
    ),
    spec(
        Post,
        "/v1/rooms/{room}/polls/{poll}/reveal",
        Route::RevealPoll,
    ),
    spec(Post, "/v1/rooms/{room}/quizzes", Route::CreateQuiz),
    spec(
        Post,
        "/v1/rooms/{room}/quizzes/{quiz}/next",
        Route::NextQuestion,
    ),
    spec(
        Post,
        "/v1/rooms/{room}/quizzes/{quiz}/close",
        Route::CloseQuestion,
    ),
    spec(Post, "/v1/rooms/{room}/quizzes/{quiz}/end", Route::EndQuiz),
    spec(Post, "/v1/rooms/{room}/products", Route::PinProduct),
    spec(Post, "/v1/rooms/{room}/products/unpin", Route::UnpinProduct),
    spec(Post, "/v1/rooms/{room}/qa/settings", Route::QaSettings),
    spec(
        Post,
        "/v1/rooms/{room}/qa/{question}/approve",
        Route::QaApprove,
    ),
    spec(
        Post,
        "/v1/rooms/{room}/qa/{question}/answer",
        Route::QaAnswer,
    ),
    spec(Post, "/v1/rooms/{room}/qa/{question}/hide", Route::QaHide),
    spec(Post, "/v1/rooms/{room}/moderation", Route::Moderation),
    spec(Post, "/v1/rooms/{room}/commands", Route::Commands),
    spec(Post, "/v1/rooms/{room}/shards", Route::Shards),
    spec(Get, "/v1/rooms/{room}/audit", Route::Audit),
];

/// What a request's method and path name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteMatch {
    Found(Route),
    /// The path is a route's, the method is not (405).
    MethodNotAllowed,
    /// No route has this path (404).
    NotFound,
}

/// The route for `method` (`None`: a method the API never uses) and `path` (the URL's
/// path, still percent-encoded; handlers decode their segments). Static segments win
/// over `{name}` segments when two routes could match.
pub fn match_route(method: Option<HttpMethod>, path: &str) -> RouteMatch {
    let segments: Vec<&str> = path.split('/').collect();
    let mut best: Option<(usize, Route)> = None;
    let mut path_known = false;
    for spec in ROUTES.iter() {
        let Some(statics) = matches(spec.path, &segments) else {
            continue;
        };
        path_known = true;
        if Some(spec.method) == method && best.is_none_or(|(s, _)| statics > s) {
            best = Some((statics, spec.route));
        }
    }
    match best {
        Some((_, route)) => RouteMatch::Found(route),
        None if path_known => RouteMatch::MethodNotAllowed,
        None => RouteMatch::NotFound,
    }
}

/// The number of static segments when `pattern` matches `segments`.
fn matches(pattern: &str, segments: &[&str]) -> Option<usize> {
    let pattern: Vec<&str> = pattern.split('/').collect();
    if pattern.len() != segments.len() {
        return None;
    }
    let mut statics = 0;
    for (want, got) in pattern.iter().zip(segments) {
        if want.starts_with('{') {
            if got.is_empty() {
                return None;
            }
        } else if want == got {
            statics += 1;
        } else {
            return None;
        }
    }
    Some(statics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_found_by_its_own_method_and_path() {
        for spec in ROUTES {
            let path = spec
                .path
                .replace("{room}", "weur-show")
                .replace("{part}", "scores")
                .replace("{poll}", "p1")
                .replace("{quiz}", "q1")
                .replace("{question}", "3");
            assert_eq!(
                match_route(Some(spec.method), &path),
                RouteMatch::Found(spec.route),
                "{path}"
            );
        }
    }

    #[test]
    fn routes_are_distinct() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(a.route != b.route, "{:?} twice", a.route);
                assert!(
                    (a.method, a.path) != (b.method, b.path),
                    "{} {} twice",
                    a.method.as_str(),
                    a.path
                );
            }
        }
    }

    #[test]
    fn a_static_segment_wins_over_a_parameter() {
        assert_eq!(
            match_route(Some(Post), "/v1/rooms/r/products/unpin"),
            RouteMatch::Found(Route::UnpinProduct)
        );
        assert_eq!(
            match_route(Some(Post), "/v1/rooms/r/qa/settings"),
            RouteMatch::Found(Route::QaSettings)
        );
        assert_eq!(
            match_route(Some(Get), "/v1/rooms"),
            RouteMatch::Found(Route::ListRooms)
        );
    }

    #[test]
    fn a_known_path_with_another_method_is_405_and_an_unknown_path_404() {
        assert_eq!(
            match_route(Some(Put), "/v1/rooms/r/state"),
            RouteMatch::MethodNotAllowed
        );
        assert_eq!(match_route(None, "/v1/rooms"), RouteMatch::MethodNotAllowed);
        for path in [
            "/",
            "",
            "/v1",
            "/v1/rooms/",
            "/v1/rooms//state",
            "/v1/rooms/r/state/",
            "/v1/rooms/r/nope",
            "/v2/rooms/r/state",
            "/v1/rooms/r/polls/p/close/now",
        ] {
            assert_eq!(match_route(Some(Get), path), RouteMatch::NotFound, "{path}");
            assert_eq!(
                match_route(Some(Post), path),
                RouteMatch::NotFound,
                "{path}"
            );
        }
    }
}
