//! A call's life, as rules on a value: who rings, who joins, when it ends and how. No I/O:
//! the call service loads a call, applies one of these, stores it and tells the members.
//!
//! A call starts with its caller in it and every other member ringing. It is answered when
//! someone else joins, and it ends when its caller (or a group admin) ends it, when the
//! last participant leaves, when everyone rang declines, or when the ring times out with
//! nobody answering (a missed call).

use std::collections::BTreeMap;

use chrono::Duration;
use uuid::Uuid;

use crate::domain::Time;
pub use crate::domain::call::{Call, Ending, Participant, Presence};

/// Why a change to a call is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the call has ended")]
    Ended,
    #[error("not a member of the call's conversation")]
    NotMember,
    #[error("the call is full")]
    Full,
    #[error("only the caller or an admin ends a call")]
    NotAllowed,
    #[error("not in the call")]
    NotJoined,
}

impl Call {
    /// A new call: the caller joined, every other member ringing.
    pub fn start(
        id: Uuid,
        conversation: Uuid,
        message: Uuid,
        caller: Uuid,
        video: bool,
        members: &[Uuid],
        now: Time,
    ) -> Call {
        let mut rung: BTreeMap<Uuid, Participant> = members
            .iter()
            .filter(|member| **member != caller)
            .map(|member| {
                let ringing = Participant {
                    presence: Presence::Ringing,
                    joined: None,
                };
                (*member, ringing)
            })
            .collect();
        rung.insert(
            caller,
            Participant {
                presence: Presence::Joined,
                joined: Some(now),
            },
        );
        Call {
            id,
            conversation,
            message,
            caller,
            video,
            started: now,
            answered: None,
            ended: None,
            members: rung,
        }
    }

    pub fn is_over(&self) -> bool {
        self.ended.is_some()
    }

    /// How many are in it now.
    pub fn joined(&self) -> usize {
        self.members
            .values()
            .filter(|p| p.presence == Presence::Joined)
            .count()
    }

    /// `user` joins (answering, coming back, or — a member who was not rung — coming in);
    /// at most `max` at once. The caller checked that `user` is a member of the
    /// conversation.
    pub fn join(&mut self, user: Uuid, max: usize, now: Time) -> Result<(), CallError> {
        self.live()?;
        // Someone who became a member after the call started is not in it yet.
        let participant = self.members.entry(user).or_insert(Participant {
            presence: Presence::Left,
            joined: None,
        });
        if participant.presence == Presence::Joined {
            return Ok(());
        }
        let joined = self
            .members
            .values()
            .filter(|p| p.presence == Presence::Joined)
            .count();
        if joined >= max {
            return Err(CallError::Full);
        }
        if let Some(participant) = self.members.get_mut(&user) {
            participant.presence = Presence::Joined;
            participant.joined = Some(now);
        }
        if user != self.caller && self.answered.is_none() {
            self.answered = Some(now);
        }
        Ok(())
    }

    /// `user` declines the ringing; when nobody else is left ringing or in the call with
    /// the caller, the call ends as declined (unanswered) or emptied.
    pub fn decline(&mut self, user: Uuid, now: Time) -> Result<(), CallError> {
        self.live()?;
        let participant = self.members.get_mut(&user).ok_or(CallError::NotMember)?;
        if participant.presence == Presence::Ringing {
            participant.presence = Presence::Declined;
        }
        let others_left = self.members.iter().any(|(id, p)| {
            *id != self.caller && matches!(p.presence, Presence::Ringing | Presence::Joined)
        });
        if !others_left {
            let ending = match self.answered {
                None => Ending::Declined,
                Some(_) => Ending::Emptied,
            };
            self.finish(now, ending);
        }
        Ok(())
    }

    /// `user` leaves; the last one out ends the call (missed, if nobody ever answered).
    pub fn leave(&mut self, user: Uuid, now: Time) -> Result<(), CallError> {
        self.live()?;
        let participant = self.members.get_mut(&user).ok_or(CallError::NotMember)?;
        if participant.presence != Presence::Joined {
            return Err(CallError::NotJoined);
        }
        participant.presence = Presence::Left;
        if self.joined() == 0 {
            let ending = match self.answered {
                None => Ending::Missed,
                Some(_) => Ending::Emptied,
            };
            self.finish(now, ending);
        }
        Ok(())
    }

    /// Ends the call for everyone: its caller, or a conversation admin (`admin`).
    pub fn end(&mut self, user: Uuid, admin: bool, now: Time) -> Result<(), CallError> {
        self.live()?;
        if user != self.caller && !admin {
            return Err(CallError::NotAllowed);
        }
        let ending = match self.answered {
            None => Ending::Missed,
            Some(_) => Ending::EndedBy(user),
        };
        self.finish(now, ending);
        Ok(())
    }

    /// The ring timed out (`ring` after the start): who still rings missed it, and a call
    /// nobody answered ends missed. `false` when there was nothing to do.
    pub fn ring_timeout(&mut self, ring: Duration, now: Time) -> bool {
        if self.is_over() || now < self.started + ring {
            return false;
        }
        let mut changed = false;
        for participant in self.members.values_mut() {
            if participant.presence == Presence::Ringing {
                participant.presence = Presence::Missed;
                changed = true;
            }
        }
        if self.answered.is_none() {
            self.finish(now, Ending::Missed);
            changed = true;
        }
        changed
    }

    /// How long it was answered for, once over.
    pub fn duration(&self) -> Option<Duration> {
        let (ended, _) = self.ended?;
        Some(ended - self.answered?)
    }

    fn live(&self) -> Result<(), CallError> {
        match self.ended {
            Some(_) => Err(CallError::Ended),
            None => Ok(()),
        }
    }

    fn finish(&mut self, now: Time, ending: Ending) {
        for participant in self.members.values_mut() {
            participant.presence = match participant.presence {
                Presence::Joined => Presence::Left,
                Presence::Ringing => Presence::Missed,
                other => other,
            };
        }
        self.ended = Some((now, ending));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        chrono::DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("time")
    }

    fn ringing(members: usize) -> (Call, Vec<Uuid>) {
        let people: Vec<Uuid> = (0..members).map(|_| Uuid::new_v4()).collect();
        let call = Call::start(
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            people[0],
            true,
            &people,
            at(0),
        );
        (call, people)
    }

    #[test]
    fn answered_then_ended_by_the_caller_has_a_duration() {
        let (mut call, p) = ringing(2);
        assert_eq!(call.members[&p[1]].presence, Presence::Ringing);
        call.join(p[1], 50, at(5)).expect("answer");
        assert_eq!(call.end(p[1], false, at(10)), Err(CallError::NotAllowed));
        call.end(p[0], false, at(65)).expect("end");
        assert_eq!(call.ended, Some((at(65), Ending::EndedBy(p[0]))));
        assert_eq!(call.duration(), Some(Duration::seconds(60)));
        assert_eq!(call.join(p[1], 50, at(70)), Err(CallError::Ended));
    }

    #[test]
    fn the_last_one_out_ends_it_and_an_admin_may_end_it() {
        let (mut call, p) = ringing(3);
        call.join(p[1], 50, at(1)).expect("join");
        call.leave(p[0], at(2)).expect("caller leaves");
        assert!(!call.is_over(), "one is still in");
        call.leave(p[1], at(3)).expect("leave");
        assert_eq!(call.ended, Some((at(3), Ending::Emptied)));
        assert_eq!(call.members[&p[2]].presence, Presence::Missed);

        let (mut call, p) = ringing(3);
        call.join(p[2], 50, at(1)).expect("join");
        call.end(p[1], true, at(9)).expect("an admin ends it");
        assert_eq!(call.ended, Some((at(9), Ending::EndedBy(p[1]))));
    }

    #[test]
    fn declined_by_everyone_rung_or_missed_after_the_ring() {
        let (mut call, p) = ringing(2);
        call.decline(p[1], at(3)).expect("decline");
        assert_eq!(call.ended, Some((at(3), Ending::Declined)));

        let (mut call, p) = ringing(3);
        call.decline(p[1], at(3)).expect("decline");
        assert!(!call.is_over(), "another still rings");
        assert!(!call.ring_timeout(Duration::seconds(30), at(29)));
        assert!(call.ring_timeout(Duration::seconds(30), at(30)));
        assert_eq!(call.ended, Some((at(30), Ending::Missed)));
        assert_eq!(call.members[&p[1]].presence, Presence::Declined);
        assert_eq!(call.members[&p[2]].presence, Presence::Missed);
        assert_eq!(call.duration(), None);

        // The caller giving up before anyone answers is a missed call too.
        let (mut call, p) = ringing(2);
        call.leave(p[0], at(4)).expect("hang up");
        assert_eq!(call.ended, Some((at(4), Ending::Missed)));
    }

    #[test]
    fn an_answered_call_goes_on_past_the_ring_and_outsiders_and_crowds_are_refused() {
        let (mut call, p) = ringing(4);
        call.join(p[1], 3, at(2)).expect("join");
        assert!(call.ring_timeout(Duration::seconds(30), at(40)));
        assert!(!call.is_over());
        assert_eq!(call.members[&p[2]].presence, Presence::Missed);
        // A member who missed the ring may still join, up to the limit.
        call.join(p[2], 3, at(41)).expect("join late");
        assert_eq!(call.join(p[3], 3, at(42)), Err(CallError::Full));
        assert_eq!(call.join(Uuid::new_v4(), 3, at(42)), Err(CallError::Full));
        // A member added since the call started comes in as anyone else.
        let newcomer = Uuid::new_v4();
        call.leave(p[1], at(42)).expect("make room");
        call.join(newcomer, 3, at(43)).expect("newcomer joins");
        assert_eq!(call.members[&newcomer].presence, Presence::Joined);
        assert_eq!(call.leave(p[3], at(43)), Err(CallError::NotJoined));
        call.join(p[2], 3, at(44))
            .expect("joining twice changes nothing");
        assert_eq!(call.joined(), 3);
    }
}
