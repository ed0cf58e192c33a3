//! The event stream as an app wants it: every event once, in order, across dropped
//! connections and server restarts. It reconnects with jittered backoff from the last
//! cursor, drops anything already delivered, turns `gap` into [`StreamEvent::Gap`], and
//! ends with an error only when going on cannot help (the session ended, the cursor is
//! not one of ours).

use std::{collections::HashMap, time::Duration};

use futures::Stream;
use rand::Rng;
use secureconnect_proto::event::v1::{
    CallUpdated, ClosingReason, ConversationEvent, PollTally, SubscribeRequest, SubscribeResponse,
    Typing, UserEvent, subscribe_response::Event,
};
use tonic::{Code, Streaming};

use crate::{Client, Error};

/// A stream silent this long is taken for dead and replaced: servers send heartbeats
/// (every 15 s by default), and a connection a network change left hanging sends nothing.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// First wait before reconnecting; doubles per failed attempt, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(15);

/// What the stream yields. Heartbeats are handled inside. New kinds may be added: match
/// with a wildcard arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
// Each event is moved once, to the app: boxing the big variant would cost an allocation
// per event and clumsier matching for nothing.
#[allow(clippy::large_enum_variant)]
pub enum StreamEvent {
    /// A durable change in one of the user's conversations.
    Conversation(ConversationEvent),
    /// A change that concerns only this user (their other devices).
    User(UserEvent),
    /// Someone started or stopped typing (never replayed).
    Typing(Typing),
    /// A poll's tally changed (never replayed; a replayed poll message carries the
    /// current tally). Keep the one with the highest `results.version`:
    /// [`crate::PollView`] does.
    PollTally(PollTally),
    /// A call in one of the user's conversations changed (ephemeral): ring while the call
    /// shows the user ringing, stop when it no longer does.
    CallUpdated(CallUpdated),
    /// Events were missed and cannot be replayed: re-read the conversations (for
    /// instance with [`Client::all_conversations`]); later events follow.
    Gap,
    /// What follows is live. Once per connection, so again after each reconnect.
    CaughtUp,
}

/// The stream's state between items.
struct Resuming {
    client: Client,
    cursor: String,
    stream: Option<Streaming<SubscribeResponse>>,
    failures: u32,
    /// The last `seq` delivered per conversation, to drop anything delivered twice.
    delivered: HashMap<String, u64>,
    ended: bool,
}

impl Client {
    /// The user's events from `cursor` (empty: from the moment the stream is first
    /// polled, when it subscribes), as a [`Stream`] of
    /// `(event, cursor)`: store the cursor once the event is handled, and pass it here
    /// after a restart of the app. The cursor is opaque: keep it as the string it is (its
    /// form changes, e.g. once the user is in a group large enough to be fanned out on
    /// read). See [`StreamEvent`] for what arrives.
    pub fn event_stream(
        &self,
        cursor: impl Into<String>,
    ) -> impl Stream<Item = Result<(StreamEvent, String), Error>> + Send + 'static {
        let state = Resuming {
            client: self.clone(),
            cursor: cursor.into(),
            stream: None,
            failures: 0,
            delivered: HashMap::new(),
            ended: false,
        };
        futures::stream::unfold(state, |mut state| async move {
            if state.ended {
                return None;
            }
            let item = state.next().await;
            if item.is_err() {
                state.ended = true;
            }
            Some((item, state))
        })
    }
}

impl Resuming {
    async fn next(&mut self) -> Result<(StreamEvent, String), Error> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                self.connect().await?;
                continue;
            };
            let Ok(received) = tokio::time::timeout(IDLE_TIMEOUT, stream.message()).await else {
                self.lost(); // Silent past every heartbeat: replace the connection.
                continue;
            };
            match received {
                Ok(Some(item)) => {
                    self.failures = 0;
                    if let Some(event) = self.accept(item)? {
                        return Ok((event, self.cursor.clone()));
                    }
                }
                // Ended without `closing` (a proxy, a dead node): resume.
                Ok(None) => self.lost(),
                Err(status) => {
                    self.lost();
                    retryable(Error::from(status))?;
                }
            }
        }
    }

    /// (Re)subscribes from the cursor, after a backoff when the last attempts failed.
    async fn connect(&mut self) -> Result<(), Error> {
        if self.failures > 0 {
            tokio::time::sleep(backoff(self.failures)).await;
        }
        let request = SubscribeRequest {
            cursor: self.cursor.clone(),
        };
        match self.client.events().subscribe(request).await {
            Ok(response) => {
                self.stream = Some(response.into_inner());
                Ok(())
            }
            Err(status) => {
                self.failures += 1;
                retryable(Error::from(status))
            }
        }
    }

    fn lost(&mut self) {
        self.stream = None;
        self.failures += 1;
    }

    /// What to hand the app for one stream item, if anything.
    fn accept(&mut self, item: SubscribeResponse) -> Result<Option<StreamEvent>, Error> {
        let event = match item.event {
            Some(Event::ConversationEvent(event)) => {
                let last = self
                    .delivered
                    .entry(event.conversation_id.clone())
                    .or_default();
                if event.seq <= *last {
                    None // Delivered already (a resume that overlapped).
                } else {
                    *last = event.seq;
                    Some(StreamEvent::Conversation(event))
                }
            }
            Some(Event::UserEvent(event)) => Some(StreamEvent::User(event)),
            Some(Event::Typing(typing)) => Some(StreamEvent::Typing(typing)),
            Some(Event::PollTally(tally)) => Some(StreamEvent::PollTally(tally)),
            Some(Event::CallUpdated(call)) => Some(StreamEvent::CallUpdated(call)),
            Some(Event::Gap(_)) => Some(StreamEvent::Gap),
            Some(Event::CaughtUp(_)) => Some(StreamEvent::CaughtUp),
            Some(Event::Heartbeat(_)) | None => None, // None: a kind newer than this SDK.
            Some(Event::Closing(closing)) => {
                self.stream = None;
                if closing.reason == ClosingReason::SessionEnded as i32 {
                    return Err(Error::SessionEnded);
                }
                None // Slow consumer or shutdown: resume from the cursor at once.
            }
        };
        if !item.cursor.is_empty() {
            self.cursor = item.cursor;
        }
        Ok(event)
    }
}

/// Ok when reconnecting may help; the error itself when it cannot.
fn retryable(error: Error) -> Result<(), Error> {
    match error.code() {
        Code::Unauthenticated
        | Code::PermissionDenied
        | Code::InvalidArgument
        | Code::NotFound
        | Code::Unimplemented
        | Code::FailedPrecondition => Err(error),
        _ => Ok(()),
    }
}

/// Exponential backoff with jitter (between half and all of the step), so a fleet of
/// clients does not reconnect in step after a server restart.
fn backoff(failures: u32) -> Duration {
    let ceiling = FIRST_BACKOFF
        .saturating_mul(1 << failures.min(16))
        .min(MAX_BACKOFF);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::thread_rng().gen_range(millis / 2..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_failures_and_stays_bounded() {
        for failures in 1..40 {
            let wait = backoff(failures);
            assert!(wait <= MAX_BACKOFF, "{failures}: {wait:?}");
            assert!(wait >= FIRST_BACKOFF, "{failures}: {wait:?}");
        }
        assert!(backoff(1) <= FIRST_BACKOFF * 2);
    }
}
