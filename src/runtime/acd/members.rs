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
