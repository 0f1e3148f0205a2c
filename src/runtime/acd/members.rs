//! Queue membership changed live (`PUT|POST|DELETE /api/v1/queues/{name}/members…`): checked
//! against the operators the server knows, applied to the queue core (which cancels a removed
//! member's rings) and followed by the members' states, so an added member is rung at once.
//!
//! Decision: a change lasts until the process stops; the config file's `members` are what a
//! start (or restart) uses. An admin who wants a change to last writes it into the config too.

use super::*;

/// One change to a queue's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembersEdit {
    /// The whole list, in ring order.
    Replace(Vec<String>),
    /// One more member, rung last under `in_order`.
    Add(String),
    Remove(String),
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembersError {
    #[error("no queue with that name")]
    NoSuchQueue,
    #[error("{0} is not a configured operator")]
    UnknownOperator(String),
    #[error("{0} is already a member")]
    AlreadyMember(String),
    #[error("{0} is not a member")]
    NotMember(String),
    /// What the config would refuse: no members, one twice.
    #[error("{0}")]
    Invalid(String),
}

impl Acd {
    /// Applies `edit` to `queue`; returns the members after it.
    pub fn edit_members(
        &mut self,
        now: Instant,
        queue: &str,
        edit: MembersEdit,
    ) -> Result<Vec<String>, MembersError> {
        let current = self
            .queues
            .get(queue)
            .ok_or(MembersError::NoSuchQueue)?
            .core
            .config()
            .members
            .clone();
        let members = match edit {
            MembersEdit::Replace(list) => list,
            MembersEdit::Add(ext) if current.contains(&ext) => {
                return Err(MembersError::AlreadyMember(ext));
            }
            MembersEdit::Add(ext) => current.iter().cloned().chain([ext]).collect(),
            MembersEdit::Remove(ext) if !current.contains(&ext) => {
                return Err(MembersError::NotMember(ext));
            }
            MembersEdit::Remove(ext) => current.iter().filter(|m| **m != ext).cloned().collect(),
        };
        if let Some(unknown) = members.iter().find(|m| !self.operators.contains_key(*m)) {
            return Err(MembersError::UnknownOperator(unknown.clone()));
        }
        let q = self
            .queues
            .get_mut(queue)
            .ok_or(MembersError::NoSuchQueue)?;
        q.core
            .set_members(now, members.clone())
            .map_err(|e| MembersError::Invalid(e.to_string()))?;
        tracing::info!(%queue, ?members, "queue members changed");
        for ext in &members {
            self.push(now, ext);
        }
        self.settle(now);
        Ok(members)
    }
}

impl Acd {
    /// An operator removed by a config reload: out of every queue that still names them (the
    /// file's lists usually changed with the removal, but members the API added, or a queue the
    /// file dropped that runs until the restart, can still name them), then out of the
    /// registry. Refused, changing nothing, when they are some queue's last member. A call they
    /// are on ends as any call does (its end counts for nobody).
    pub fn remove_operator(&mut self, now: Instant, ext: &str) -> Result<(), MembersError> {
        let naming: Vec<String> = self
            .queues
            .iter()
            .filter(|(_, q)| q.core.config().members.iter().any(|m| m == ext))
            .map(|(name, _)| name.clone())
            .collect();
        if let Some(last) = naming
            .iter()
            .find(|q| self.queues[q.as_str()].core.config().members.len() == 1)
        {
            return Err(MembersError::Invalid(format!(
                "{ext} is the last member of queue {last}"
            )));
        }
        for queue in naming {
            self.edit_members(now, &queue, MembersEdit::Remove(ext.to_string()))?;
        }
        if self.operators.remove(ext).is_some() {
            self.settle(now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queues `a` (101, 102) and `b` (101), operators 101 and 102 online and registered.
    fn two_queues(now: Instant) -> Acd {
        #[derive(serde::Deserialize)]
        struct File {
            queues: Vec<QueueFileConfig>,
        }
        let toml = "[[queues]]\nname = \"a\"\nmembers = [\"101\", \"102\"]\nstrategy = \"in_order\"\n\
                    [[queues]]\nname = \"b\"\nmembers = [\"101\"]\n";
        let file: File = toml::from_str(toml).unwrap();
        let seed = |ext: &str| OperatorSeed {
            extension: ext.into(),
            name: ext.into(),
            max_calls: 1,
            status: Presence::Online,
            status_reason: None,
            skills: vec![],
        };
        let mut acd = Acd::new(&file.queues, vec![seed("101"), seed("102")], now);
        acd.set_registered(now, "101", true);
        acd.set_registered(now, "102", true);
        std::iter::from_fn(|| acd.poll_action()).for_each(drop);
        acd
    }

    fn rings(acd: &mut Acd) -> Vec<(CallerId, String)> {
        std::iter::from_fn(|| acd.poll_action())
            .filter_map(|a| match a {
                AcdAction::Ring { caller, ext, .. } => Some((caller, ext)),
                _ => None,
            })
            .collect()
    }

    /// Review: 101, ringing for a caller of queue a, was removed from a; the ring was cancelled
    /// but queue b still thought 101 was ringing elsewhere and never offered b's callers to them.
    #[test]
    fn a_member_removed_while_ringing_is_free_for_their_other_queues() {
        let t0 = crate::testing::t0();
        let mut acd = two_queues(t0);
        assert!(acd.join(t0, 1, "a", JoinRequest::default()));
        assert_eq!(rings(&mut acd), vec![(1, "101".to_string())]);

        let members = acd.edit_members(t0, "a", MembersEdit::Remove("101".into()));
        assert_eq!(members, Ok(vec!["102".to_string()]));
        assert_eq!(
            rings(&mut acd),
            vec![(1, "102".to_string())],
            "a's caller goes to 102"
        );

        assert!(acd.join(t0, 2, "b", JoinRequest::default()));
        assert_eq!(
            rings(&mut acd),
            vec![(2, "101".to_string())],
            "101 is free for b"
        );
    }

    #[test]
    fn edits_are_checked_against_the_queue_and_the_operators() {
        let t0 = crate::testing::t0();
        let mut acd = two_queues(t0);
        let cases = [
            (
                "nope",
                MembersEdit::Add("101".into()),
                MembersError::NoSuchQueue,
            ),
            (
                "a",
                MembersEdit::Add("999".into()),
                MembersError::UnknownOperator("999".into()),
            ),
            (
                "a",
                MembersEdit::Add("101".into()),
                MembersError::AlreadyMember("101".into()),
            ),
            (
                "b",
                MembersEdit::Remove("102".into()),
                MembersError::NotMember("102".into()),
            ),
        ];
        for (queue, edit, error) in cases {
            assert_eq!(
                acd.edit_members(t0, queue, edit.clone()),
                Err(error),
                "{queue} {edit:?}"
            );
        }
        assert!(matches!(
            acd.edit_members(t0, "b", MembersEdit::Remove("101".into())),
            Err(MembersError::Invalid(_))
        ));
        assert_eq!(
            acd.edit_members(
                t0,
                "b",
                MembersEdit::Replace(vec!["102".into(), "101".into()])
            ),
            Ok(vec!["102".to_string(), "101".to_string()])
        );
    }

    #[test]
    fn a_removed_operator_leaves_every_queue_unless_they_are_its_last_member() {
        let t0 = crate::testing::t0();
        let mut acd = two_queues(t0);
        // 101 is b's only member: refused, nothing changes.
        assert!(matches!(
            acd.remove_operator(t0, "101"),
            Err(MembersError::Invalid(_))
        ));
        assert!(acd.is_operator("101"));
        assert_eq!(acd.queues["a"].core.config().members, ["101", "102"]);
        // 102 leaves a (which still names them) and the registry; a's caller rings 101 only.
        assert_eq!(acd.remove_operator(t0, "102"), Ok(()));
        assert!(!acd.is_operator("102"));
        assert_eq!(acd.queues["a"].core.config().members, ["101"]);
        assert!(acd.join(t0, 1, "a", JoinRequest::default()));
        assert_eq!(rings(&mut acd), vec![(1, "101".to_string())]);
    }
}
