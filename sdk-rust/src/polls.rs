//! Polls: creating one without hand-made request ids, and a poll view the event stream
//! keeps current (live tallies, options added, the close, the deletion).

use secureconnect_proto::{
    event::v1::conversation_event::Change,
    message::v1::{Message, message_content::Body},
    poll::v1::{CreatePollRequest, Poll, PollResults, PollSettings, PollState},
};

use crate::{Client, Error, StreamEvent};

impl Client {
    /// Creates a poll in a conversation under a fresh request id (so a retry by the
    /// transport below cannot create it twice) and returns it as the creator sees it.
    pub async fn create_poll(
        &self,
        conversation_id: impl Into<String>,
        question: impl Into<String>,
        options: impl IntoIterator<Item = impl Into<String>>,
        settings: PollSettings,
    ) -> Result<Poll, Error> {
        let request = CreatePollRequest {
            conversation_id: conversation_id.into(),
            question: question.into(),
            options: options.into_iter().map(Into::into).collect(),
            settings: Some(settings),
            request_id: uuid::Uuid::new_v4().to_string(),
        };
        let created = self.polls().create_poll(request).await?.into_inner();
        created
            .poll
            .ok_or_else(|| Error::from(tonic::Status::internal("CreatePoll answered no poll")))
    }
}

/// One poll as this user sees it, kept current by feeding it the event stream:
///
/// ```no_run
/// # async fn demo(client: secureconnect_sdk::Client, poll: secureconnect_sdk::proto::poll::v1::Poll) -> Result<(), secureconnect_sdk::Error> {
/// use futures::StreamExt;
/// let mut view = secureconnect_sdk::PollView::new(poll);
/// let mut events = std::pin::pin!(client.event_stream(""));
/// while let Some(item) = events.next().await {
///     let (event, _cursor) = item?;
///     if view.apply(&event) {
///         println!("{} voters", view.poll().results.as_ref().map_or(0, |r| r.total_voters));
///     }
/// }
/// # Ok(()) }
/// ```
///
/// Tallies arrive coalesced (a few per second at most) and possibly out of order from
/// different servers: the view keeps the one with the highest version. Your own vote's
/// effect shows at once if you apply the poll your `CastVote` returned
/// ([`PollView::replace`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PollView {
    poll: Poll,
}

impl PollView {
    /// Starts from a poll as `GetPoll`, `CreatePoll`, `CastVote` or a poll message gave it.
    pub fn new(poll: Poll) -> Self {
        Self { poll }
    }

    /// The poll as it stands.
    pub fn poll(&self) -> &Poll {
        &self.poll
    }

    /// Takes a newer copy of the poll (the answer to your own vote, a fresh `GetPoll`),
    /// keeping the tally already held if that one is newer.
    pub fn replace(&mut self, poll: Poll) -> bool {
        if poll.poll_id != self.poll.poll_id {
            return false;
        }
        let kept = newer(self.poll.results.as_ref(), poll.results.as_ref())
            .then(|| self.poll.results.clone())
            .flatten();
        let changed = poll != self.poll;
        self.poll = poll;
        if let Some(results) = kept {
            self.poll.results = Some(results);
        }
        changed
    }

    /// Applies one event from [`Client::event_stream`]; `true` when the poll changed.
    pub fn apply(&mut self, event: &StreamEvent) -> bool {
        match event {
            StreamEvent::PollTally(tally) if tally.poll_id == self.poll.poll_id => {
                self.take_results(tally.results.as_ref())
            }
            StreamEvent::Conversation(event)
                if event.conversation_id == self.poll.conversation_id =>
            {
                match &event.change {
                    Some(Change::MessageSent(message) | Change::MessageEdited(message)) => {
                        match carried(message) {
                            Some(poll) if poll.poll_id == self.poll.poll_id => {
                                self.replace(poll.clone())
                            }
                            _ => false,
                        }
                    }
                    Some(Change::PollClosed(closed)) if closed.poll_id == self.poll.poll_id => {
                        self.poll.state = PollState::Closed.into();
                        self.poll.closed_time = event.create_time;
                        if let Some(results) = &closed.results {
                            self.poll.results = Some(results.clone());
                        }
                        true
                    }
                    Some(Change::MessageDeleted(message))
                        if message.message_id == self.poll.message_id =>
                    {
                        self.poll.state = PollState::Deleted.into();
                        self.poll.options.clear();
                        self.poll.results = None;
                        self.poll.my_option_ids.clear();
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }

    fn take_results(&mut self, results: Option<&PollResults>) -> bool {
        let Some(results) = results else {
            return false;
        };
        if newer(self.poll.results.as_ref(), Some(results)) {
            return false;
        }
        let changed = self.poll.results.as_ref() != Some(results);
        self.poll.results = Some(results.clone());
        changed
    }
}

/// Whether `held` is strictly newer than `incoming`.
fn newer(held: Option<&PollResults>, incoming: Option<&PollResults>) -> bool {
    match (held, incoming) {
        (Some(held), Some(incoming)) => held.version > incoming.version,
        _ => false,
    }
}

/// The poll a message carries, if it is a poll message.
fn carried(message: &Message) -> Option<&Poll> {
    match message.content.as_ref()?.body.as_ref()? {
        Body::Poll(poll) => Some(poll),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use secureconnect_proto::{
        event::v1::{ConversationEvent, PollClosed, PollTally},
        poll::v1::OptionCount,
    };

    use super::*;

    fn results(version: u64, votes: u32) -> PollResults {
        PollResults {
            counts: vec![OptionCount {
                option_id: "o1".into(),
                votes,
            }],
            total_voters: votes,
            version,
        }
    }

    fn view() -> PollView {
        PollView::new(Poll {
            poll_id: "p".into(),
            conversation_id: "c".into(),
            message_id: "m".into(),
            results: Some(results(3, 3)),
            state: PollState::Open.into(),
            ..Default::default()
        })
    }

    fn tally(version: u64, votes: u32) -> StreamEvent {
        StreamEvent::PollTally(PollTally {
            conversation_id: "c".into(),
            poll_id: "p".into(),
            results: Some(results(version, votes)),
        })
    }

    #[test]
    fn newer_tallies_win_and_older_ones_are_ignored() {
        let mut view = view();
        assert!(view.apply(&tally(5, 7)));
        assert!(!view.apply(&tally(4, 6)), "an older tally arriving late");
        assert_eq!(view.poll().results, Some(results(5, 7)));
        let other = StreamEvent::PollTally(PollTally {
            poll_id: "other".into(),
            ..Default::default()
        });
        assert!(!view.apply(&other));
    }

    #[test]
    fn the_close_and_the_deletion_show() {
        let mut view = view();
        let closed = StreamEvent::Conversation(ConversationEvent {
            conversation_id: "c".into(),
            change: Some(Change::PollClosed(PollClosed {
                poll_id: "p".into(),
                message_id: "m".into(),
                results: Some(results(9, 10)),
                closed_time: None,
            })),
            ..Default::default()
        });
        assert!(view.apply(&closed));
        assert_eq!(view.poll().state, PollState::Closed as i32);
        assert_eq!(view.poll().results, Some(results(9, 10)));
        let deleted = StreamEvent::Conversation(ConversationEvent {
            conversation_id: "c".into(),
            change: Some(Change::MessageDeleted(Message {
                message_id: "m".into(),
                ..Default::default()
            })),
            ..Default::default()
        });
        assert!(view.apply(&deleted));
        assert_eq!(view.poll().state, PollState::Deleted as i32);
        assert_eq!(view.poll().results, None);
    }

    #[test]
    fn a_replaced_poll_keeps_a_newer_tally_already_held() {
        let mut view = view();
        view.apply(&tally(8, 8));
        let mut answer = view.poll().clone();
        answer.results = Some(results(6, 6));
        answer.my_option_ids = vec!["o1".into()];
        assert!(view.replace(answer));
        assert_eq!(view.poll().results, Some(results(8, 8)));
        assert_eq!(view.poll().my_option_ids, ["o1"]);
    }
}
