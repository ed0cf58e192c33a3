//! Calls ⇄ `secureconnect.storage.v1`: the call record a `CallEnded` event and a
//! `CallUpdated` bus signal carry.

use secureconnect_proto::storage::v1 as pb;

use super::convert::{bad, id, id_bytes, optional_id, optional_time_from, time, time_from};
use crate::{
    domain::call::{Call, CallRef, Ending, Participant, Presence},
    error::Result,
};

pub fn call_ref_to_proto(call: &CallRef) -> pb::CallRef {
    pb::CallRef {
        call_id: id_bytes(call.call_id),
        video: call.video,
    }
}

pub fn call_ref_from_proto(call: pb::CallRef) -> Result<CallRef> {
    Ok(CallRef {
        call_id: id(&call.call_id)?,
        video: call.video,
    })
}

pub fn call_to_proto(call: &Call) -> pb::Call {
    let (end_time, ending, ended_by) = match call.ended {
        None => (None, pb::CallEnding::Unspecified, None),
        Some((at, ending)) => {
            let (code, by) = match ending {
                Ending::EndedBy(user) => (pb::CallEnding::EndedBy, Some(user)),
                Ending::Emptied => (pb::CallEnding::Emptied, None),
                Ending::Declined => (pb::CallEnding::Declined, None),
                Ending::Missed => (pb::CallEnding::Missed, None),
            };
            (time(at), code, by)
        }
    };
    pb::Call {
        id: id_bytes(call.id),
        conversation_id: id_bytes(call.conversation),
        message_id: id_bytes(call.message),
        caller_id: id_bytes(call.caller),
        video: call.video,
        start_time: time(call.started),
        answer_time: call.answered.and_then(time),
        end_time,
        ending: ending as i32,
        ended_by: ended_by.map(id_bytes).unwrap_or_default(),
        members: call
            .members
            .iter()
            .map(|(user, p)| pb::CallMember {
                user_id: id_bytes(*user),
                presence: presence_code(p.presence) as i32,
                join_time: p.joined.and_then(time),
            })
            .collect(),
    }
}

pub fn call_from_proto(call: Option<pb::Call>) -> Result<Call> {
    let call = call.ok_or_else(|| bad("a call event without its call"))?;
    let ended = match optional_time_from(call.end_time)? {
        None => None,
        Some(at) => {
            let ending = match pb::CallEnding::try_from(call.ending) {
                Ok(pb::CallEnding::EndedBy) => Ending::EndedBy(
                    optional_id(&call.ended_by)?.ok_or_else(|| bad("a call ended by nobody"))?,
                ),
                Ok(pb::CallEnding::Emptied) => Ending::Emptied,
                Ok(pb::CallEnding::Declined) => Ending::Declined,
                Ok(pb::CallEnding::Missed) => Ending::Missed,
                _ => return Err(bad("unknown call ending")),
            };
            Some((at, ending))
        }
    };
    let members = call
        .members
        .into_iter()
        .map(|m| {
            let presence = match pb::CallPresence::try_from(m.presence) {
                Ok(pb::CallPresence::Ringing) => Presence::Ringing,
                Ok(pb::CallPresence::Joined) => Presence::Joined,
                Ok(pb::CallPresence::Left) => Presence::Left,
                Ok(pb::CallPresence::Declined) => Presence::Declined,
                Ok(pb::CallPresence::Missed) => Presence::Missed,
                _ => return Err(bad("unknown call presence")),
            };
            let joined = optional_time_from(m.join_time)?;
            Ok((id(&m.user_id)?, Participant { presence, joined }))
        })
        .collect::<Result<_>>()?;
    Ok(Call {
        id: id(&call.id)?,
        conversation: id(&call.conversation_id)?,
        message: id(&call.message_id)?,
        caller: id(&call.caller_id)?,
        video: call.video,
        started: time_from(call.start_time)?,
        answered: optional_time_from(call.answer_time)?,
        ended,
        members,
    })
}

fn presence_code(presence: Presence) -> pb::CallPresence {
    match presence {
        Presence::Ringing => pb::CallPresence::Ringing,
        Presence::Joined => pb::CallPresence::Joined,
        Presence::Left => pb::CallPresence::Left,
        Presence::Declined => pb::CallPresence::Declined,
        Presence::Missed => pb::CallPresence::Missed,
    }
}
