//! `secureconnect.poll.v1.PollService`, and the reader's view of the polls that
//! messages carry.

use std::{collections::HashMap, sync::Arc};

use secureconnect_proto::{
    message::v1 as msg_pb,
    poll::v1::{self as pb, poll_service_server::PollService},
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{convert, principal};
use crate::{
    auth::{Auth, Operation},
    domain::poll::{PollSettings, PollState, ResultsVisibility},
    polls::{CreatePoll, PollFilter, PollPage, PollView, Polls, Voter, VoterPage},
};

pub struct PollApi {
    pub auth: Arc<Auth>,
    pub polls: Arc<Polls>,
}

#[tonic::async_trait]
impl PollService for PollApi {
    async fn create_poll(
        &self,
        req: Request<pb::CreatePollRequest>,
    ) -> Result<Response<pb::CreatePollResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let input = CreatePoll {
            conversation_id: r.conversation_id,
            question: r.question,
            options: r.options,
            settings: settings_from(r.settings),
            request_id: r.request_id,
        };
        let view = self
            .polls
            .create(who.user_id, input, chrono::Utc::now())
            .await?;
        Ok(Response::new(pb::CreatePollResponse {
            poll: Some(poll(view)),
        }))
    }

    async fn get_poll(
        &self,
        req: Request<pb::GetPollRequest>,
    ) -> Result<Response<pb::GetPollResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let view = self.polls.get(who.user_id, &req.get_ref().poll_id).await?;
        Ok(Response::new(pb::GetPollResponse {
            poll: Some(poll(view)),
        }))
    }

    async fn list_polls(
        &self,
        req: Request<pb::ListPollsRequest>,
    ) -> Result<Response<pb::ListPollsResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let r = req.into_inner();
        let filter = match pb::PollFilter::try_from(r.filter) {
            Ok(pb::PollFilter::Open) => PollFilter::Open,
            Ok(pb::PollFilter::Closed) => PollFilter::Closed,
            _ => PollFilter::All,
        };
        let page = PollPage {
            conversation_id: r.conversation_id,
            filter,
            page_size: r.page_size,
            page_token: r.page_token,
        };
        let (views, next_page_token) = self.polls.list(who.user_id, page).await?;
        Ok(Response::new(pb::ListPollsResponse {
            polls: views.into_iter().map(poll).collect(),
            next_page_token,
        }))
    }

    async fn cast_vote(
        &self,
        req: Request<pb::CastVoteRequest>,
    ) -> Result<Response<pb::CastVoteResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let view = self
            .polls
            .cast_vote(who.user_id, &r.poll_id, &r.option_ids)
            .await?;
        Ok(Response::new(pb::CastVoteResponse {
            poll: Some(poll(view)),
        }))
    }

    async fn retract_vote(
        &self,
        req: Request<pb::RetractVoteRequest>,
    ) -> Result<Response<pb::RetractVoteResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let view = self
            .polls
            .retract_vote(who.user_id, &req.get_ref().poll_id)
            .await?;
        Ok(Response::new(pb::RetractVoteResponse {
            poll: Some(poll(view)),
        }))
    }

    async fn add_poll_option(
        &self,
        req: Request<pb::AddPollOptionRequest>,
    ) -> Result<Response<pb::AddPollOptionResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let view = self
            .polls
            .add_option(who.user_id, &r.poll_id, &r.text)
            .await?;
        Ok(Response::new(pb::AddPollOptionResponse {
            poll: Some(poll(view)),
        }))
    }

    async fn close_poll(
        &self,
        req: Request<pb::ClosePollRequest>,
    ) -> Result<Response<pb::ClosePollResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let view = self
            .polls
            .close(who.user_id, &req.get_ref().poll_id)
            .await?;
        Ok(Response::new(pb::ClosePollResponse {
            poll: Some(poll(view)),
        }))
    }

    async fn delete_poll(
        &self,
        req: Request<pb::DeletePollRequest>,
    ) -> Result<Response<pb::DeletePollResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        self.polls
            .delete(who.user_id, &req.get_ref().poll_id)
            .await?;
        Ok(Response::new(pb::DeletePollResponse {}))
    }

    async fn list_poll_voters(
        &self,
        req: Request<pb::ListPollVotersRequest>,
    ) -> Result<Response<pb::ListPollVotersResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let r = req.into_inner();
        let page = VoterPage {
            poll_id: r.poll_id,
            option_id: r.option_id,
            page_size: r.page_size,
            page_token: r.page_token,
        };
        let (voters, next_page_token) = self.polls.voters(who.user_id, page).await?;
        Ok(Response::new(pb::ListPollVotersResponse {
            voters: voters.into_iter().map(voter).collect(),
            next_page_token,
        }))
    }
}

fn settings_from(s: Option<pb::PollSettings>) -> PollSettings {
    let s = s.unwrap_or_default();
    PollSettings {
        multiple_choice: s.multiple_choice,
        max_selections: (s.max_selections > 0).then_some(s.max_selections),
        allow_vote_changes: s.allow_vote_changes,
        anonymous: s.anonymous,
        results_visibility: match pb::ResultsVisibility::try_from(s.results_visibility) {
            Ok(pb::ResultsVisibility::AfterVoting) => ResultsVisibility::AfterVoting,
            Ok(pb::ResultsVisibility::AfterClose) => ResultsVisibility::AfterClose,
            _ => ResultsVisibility::Always,
        },
        members_can_add_options: s.members_can_add_options,
        close_time: s.close_time.and_then(|t| {
            chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
        }),
    }
}

fn settings(s: PollSettings) -> pb::PollSettings {
    pb::PollSettings {
        multiple_choice: s.multiple_choice,
        max_selections: s.max_selections.unwrap_or(0),
        allow_vote_changes: s.allow_vote_changes,
        anonymous: s.anonymous,
        results_visibility: match s.results_visibility {
            ResultsVisibility::Always => pb::ResultsVisibility::Always,
            ResultsVisibility::AfterVoting => pb::ResultsVisibility::AfterVoting,
            ResultsVisibility::AfterClose => pb::ResultsVisibility::AfterClose,
        }
        .into(),
        members_can_add_options: s.members_can_add_options,
        close_time: s.close_time.map(convert::timestamp),
    }
}

/// A poll as one member sees it: the tally only when they may see it now.
pub fn poll(view: PollView) -> pb::Poll {
    let p = view.poll;
    pb::Poll {
        poll_id: p.id.to_string(),
        conversation_id: p.conversation_id.to_string(),
        message_id: p.message_id.to_string(),
        creator_user_id: p.creator.to_string(),
        question: p.question,
        options: p
            .options
            .into_iter()
            .map(|o| pb::PollOption {
                option_id: o.id.to_string(),
                text: o.text,
                added_by_user_id: o.added_by.to_string(),
            })
            .collect(),
        settings: Some(settings(p.settings)),
        state: match p.state {
            PollState::Open => pb::PollState::Open,
            PollState::Closed => pb::PollState::Closed,
            PollState::Deleted => pb::PollState::Deleted,
        }
        .into(),
        create_time: Some(convert::timestamp(p.create_time)),
        closed_time: p.closed_time.map(convert::timestamp),
        results: view.sees_results.then(|| convert::tally(p.tally)),
        my_option_ids: view.my_picks.iter().map(Uuid::to_string).collect(),
        voted: view.voted,
    }
}

fn voter(v: Voter) -> pb::PollVoter {
    pb::PollVoter {
        user_id: v.user_id.to_string(),
        option_ids: v.picks.iter().map(Uuid::to_string).collect(),
        vote_time: Some(convert::timestamp(v.time)),
    }
}

/// Puts the reader's view of each poll into the poll messages among `messages` (which
/// `convert::message` left with only the poll's id and question).
pub fn fill_polls<'a>(
    messages: impl IntoIterator<Item = &'a mut msg_pb::Message>,
    mut views: HashMap<Uuid, PollView>,
) {
    for message in messages {
        let Some(msg_pb::message_content::Body::Poll(carried)) = message
            .content
            .as_mut()
            .and_then(|content| content.body.as_mut())
        else {
            continue;
        };
        let view = Uuid::parse_str(&carried.poll_id)
            .ok()
            .and_then(|id| views.remove(&id));
        if let Some(view) = view {
            *carried = poll(view);
        }
    }
}

/// The poll id a message carries, if it is a poll message.
fn carried_poll(message: &msg_pb::Message) -> Option<Uuid> {
    match message.content.as_ref()?.body.as_ref()? {
        msg_pb::message_content::Body::Poll(poll) => Uuid::parse_str(&poll.poll_id).ok(),
        _ => None,
    }
}

/// [`fill_polls`] for messages `viewer` may read, loading the views it needs. A failure
/// to load them leaves the polls' id and question only: the message itself is delivered.
pub async fn with_polls<'a>(
    polls: &Polls,
    viewer: Uuid,
    messages: impl IntoIterator<Item = &'a mut msg_pb::Message>,
) {
    let messages: Vec<&mut msg_pb::Message> = messages.into_iter().collect();
    let ids: Vec<Uuid> = messages.iter().filter_map(|m| carried_poll(m)).collect();
    if ids.is_empty() {
        return;
    }
    match polls.views_by_id(viewer, &ids).await {
        Ok(views) => fill_polls(messages, views),
        Err(err) => tracing::warn!(error = %err, "cannot load the polls of messages"),
    }
}

/// The message of a stream event, when it is one that can carry a poll.
pub fn event_message(
    response: &mut secureconnect_proto::event::v1::SubscribeResponse,
) -> Option<&mut msg_pb::Message> {
    use secureconnect_proto::event::v1::{conversation_event::Change, subscribe_response::Event};
    let Some(Event::ConversationEvent(event)) = response.event.as_mut() else {
        return None;
    };
    match event.change.as_mut()? {
        Change::MessageSent(m) | Change::MessageEdited(m) => Some(m),
        _ => None,
    }
}
