//! The audience sub-state on its own: the by-user index against a model.

use super::*;
use proptest::prelude::*;

#[derive(Debug)]
struct Socket(Identity);

impl Member for Socket {
    fn identity(&self) -> &Identity {
        &self.0
    }
}

proptest! {
    /// Any order of joins and leaves (also leaves of unknown ids): each user's sockets are
    /// exactly the sockets with that user, and a user with none is not listed.
    #[test]
    fn the_user_index_matches_the_sockets(ops in prop::collection::vec((any::<bool>(), 0u64..40, 0u8..5), 0..400)) {
        let mut audience = Audience::<Socket>::default();
        let mut model: BTreeMap<ConnectionId, String> = BTreeMap::new();
        for (join, id, user) in ops {
            let user = format!("u{user}");
            if join && !model.contains_key(&id) {
                audience.insert(id, Socket(identity(&user, Role::Viewer)));
                model.insert(id, user);
            } else if !join {
                let removed = audience.remove(id).map(|s| s.0.user);
                prop_assert_eq!(removed, model.remove(&id));
            }
        }
        prop_assert_eq!(audience.len(), model.len());
        for u in 0..5 {
            let user = format!("u{u}");
            let expected: Vec<ConnectionId> =
                model.iter().filter(|(_, m)| **m == user).map(|(id, _)| *id).collect();
            prop_assert_eq!(audience.of_user(&user).collect::<Vec<_>>(), expected);
        }
    }
}

#[test]
#[should_panic(expected = "host reused connection id 7")]
fn a_reused_connection_id_is_a_host_bug() {
    let mut audience = Audience::<Socket>::default();
    audience.insert(7, Socket(identity("a", Role::Viewer)));
    audience.insert(7, Socket(identity("b", Role::Viewer)));
}
