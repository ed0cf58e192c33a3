//! The poll service: what each RPC does, on top of the rules and the store. Every method
//! finds the poll's conversation and checks membership first: to anyone else a poll does
//! not exist (`NOT_FOUND`).

use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    coalesce::{Coalescer, WeakCoalescer},
    rules,
};
use crate::{
    bus::EventBus,
    chat::request_ids::Fingerprint,
    config::LimitsConfig,
    domain::{
        Signal, TallySignal, Time,
        poll::{PollRecord, PollSettings, PollState, ResultsVisibility},
    },
    error::{Error, Reason, Result},
    paging,
    ratelimit::{Limit, RateLimiter},
    store::{ChatStore, Committed, NewPoll, PollStore, RequestKind},
    validate::{self, Violations},
};

/// At most one tally update per poll per this interval on the streams (per node).
pub const TALLY_INTERVAL: Duration = Duration::from_millis(250);

/// At most one tally update per poll per 200 ms across the cluster (each node also
/// coalesces its own votes, to one per [`TALLY_INTERVAL`]; this keeps several nodes from
/// adding up their updates). A little under the interval, so that a node's own updates,
/// an interval apart by its clock, are not refused for the time the check itself took.
const TALLY_LIMIT: Limit = Limit {
    name: "poll-tally",
    max: 1,
    window: Duration::from_millis(200),
};

/// Polls whose last published version a node remembers (then it starts over).
const REMEMBERED_TALLIES: usize = 10_000;

/// More members than any conversation may have.
const MAX_RECIPIENTS: u64 = 1_000_000;

/// A poll as one member sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PollView {
    pub poll: PollRecord,
    /// What this member picked (always empty on anonymous polls).
    pub my_picks: Vec<Uuid>,
    pub voted: bool,
    /// Whether the results visibility lets this member see the tally now.
    pub sees_results: bool,
}

impl PollView {
    fn new(poll: PollRecord, vote: Option<Vec<Uuid>>) -> Self {
        let voted = vote.is_some();
        let sees_results = rules::sees_results(&poll.settings, poll.state, voted);
        Self {
            poll,
            my_picks: vote.unwrap_or_default(),
            voted,
            sees_results,
        }
    }
}

/// Input of `create`.
#[derive(Debug, Clone, Default)]
pub struct CreatePoll {
    pub conversation_id: String,
    pub question: String,
    pub options: Vec<String>,
    pub settings: PollSettings,
    pub request_id: String,
}

/// Which polls `list` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PollFilter {
    #[default]
    All,
    Open,
    Closed,
}

/// Input of `list`.
#[derive(Debug, Clone, Default)]
pub struct PollPage {
    pub conversation_id: String,
    pub filter: PollFilter,
    pub page_size: i32,
    pub page_token: String,
}

/// Input of `voters`.
#[derive(Debug, Clone, Default)]
pub struct VoterPage {
    pub poll_id: String,
    pub option_id: String,
    pub page_size: i32,
    pub page_token: String,
}

pub struct Polls {
    store: Arc<dyn PollStore>,
    chat: Arc<dyn ChatStore>,
    bus: Arc<dyn EventBus>,
    limiter: Arc<dyn RateLimiter>,
    limits: LimitsConfig,
    tallies: Coalescer<Uuid>,
}

impl Polls {
    /// Starts the service and its tally publisher (which ends with the service).
    pub fn new(
        store: Arc<dyn PollStore>,
        chat: Arc<dyn ChatStore>,
        bus: Arc<dyn EventBus>,
        limiter: Arc<dyn RateLimiter>,
        limits: LimitsConfig,
    ) -> Self {
        let (tallies, changed) = Coalescer::start(TALLY_INTERVAL);
        tokio::spawn(publish_tallies(
            changed,
            tallies.downgrade(),
            TallyPublisher {
                store: store.clone(),
                chat: chat.clone(),
                bus: bus.clone(),
                limiter: limiter.clone(),
            },
        ));
        Self {
            store,
            chat,
            bus,
            limiter,
            limits,
            tallies,
        }
    }

    pub async fn create(&self, who: Uuid, input: CreatePoll, now: Time) -> Result<PollView> {
        let mut v = Violations::new();
        let conversation_id = v.id("conversation_id", &input.conversation_id);
        let (question, options) = rules::check_new_poll(
            &mut v,
            &input.question,
            &input.options,
            &input.settings,
            now,
        );
        validate::request_id(&mut v, "request_id", &input.request_id, true);
        v.finish()?;
        let conversation_id = conversation_id.ok_or(Error::NotFound("conversation"))?;
        let settings_bytes = serde_json::to_vec(&input.settings).map_err(Error::internal)?;
        let request = options
            .iter()
            .fold(
                Fingerprint::of("poll")
                    .id(conversation_id)
                    .part(question.as_bytes())
                    .part(&settings_bytes),
                |print, option| print.part(option.as_bytes()),
            )
            .key(who, RequestKind::Message, input.request_id);
        // A poll posts a message: it counts against the sender's allowance.
        self.limiter
            .check(crate::chat::send_limit(&self.limits), &who.to_string())
            .await?;
        let new = NewPoll {
            conversation_id,
            creator: who,
            question,
            options,
            settings: input.settings,
        };
        let poll = self.publish(self.store.create_poll(new, request, now).await?);
        self.view(who, poll).await
    }

    pub async fn get(&self, who: Uuid, poll_id: &str) -> Result<PollView> {
        let poll = self.visible_poll(who, poll_id).await?;
        self.view(who, poll).await
    }

    pub async fn list(&self, who: Uuid, page: PollPage) -> Result<(Vec<PollView>, String)> {
        let mut v = Violations::new();
        let conversation_id = v.id("conversation_id", &page.conversation_id);
        let size = v.page_size("page_size", page.page_size, 20, 100);
        v.finish()?;
        let conversation_id = conversation_id.ok_or(Error::NotFound("conversation"))?;
        let before = paging::decode_time_key("page_token", &page.page_token)?;
        self.member(conversation_id, who).await?;
        let open = match page.filter {
            PollFilter::All => None,
            PollFilter::Open => Some(true),
            PollFilter::Closed => Some(false),
        };
        let polls = self
            .store
            .polls(conversation_id, open, before, size)
            .await?;
        let next = paging::next_token(&polls, size, |p| {
            paging::encode_time_key(p.create_time, p.id)
        });
        Ok((self.views(who, polls).await?, next))
    }

    pub async fn cast_vote(&self, who: Uuid, poll_id: &str, picks: &[String]) -> Result<PollView> {
        let poll = parse_poll_id(poll_id)?;
        let after = self
            .store
            .cast_vote(poll, who, picks, chrono::Utc::now())
            .await?;
        self.tallies.mark(poll);
        self.view(who, after).await
    }

    pub async fn retract_vote(&self, who: Uuid, poll_id: &str) -> Result<PollView> {
        let poll = parse_poll_id(poll_id)?;
        let after = self.store.retract_vote(poll, who).await?;
        self.tallies.mark(poll);
        self.view(who, after).await
    }

    pub async fn add_option(&self, who: Uuid, poll_id: &str, text: &str) -> Result<PollView> {
        let poll = parse_poll_id(poll_id)?;
        let committed = self
            .store
            .add_option(poll, who, text, chrono::Utc::now())
            .await?;
        let after = self.publish(committed);
        self.tallies.mark(poll);
        self.view(who, after).await
    }

    pub async fn close(&self, who: Uuid, poll_id: &str) -> Result<PollView> {
        let poll = parse_poll_id(poll_id)?;
        let committed = self.store.close_poll(poll, who, chrono::Utc::now()).await?;
        let after = self.publish(committed);
        self.view(who, after).await
    }

    /// Deletes the poll by deleting its message (the author — its creator — or a group
    /// admin): the timeline keeps a tombstone.
    pub async fn delete(&self, who: Uuid, poll_id: &str) -> Result<()> {
        let poll = self.visible_poll(who, poll_id).await?;
        if poll.state == PollState::Deleted {
            return Ok(());
        }
        let committed = self
            .chat
            .delete_message(
                poll.conversation_id,
                poll.message_id,
                who,
                chrono::Utc::now(),
            )
            .await?;
        self.publish(committed);
        Ok(())
    }

    /// Who voted for what on a public poll, when the caller may see its tally.
    pub async fn voters(&self, who: Uuid, page: VoterPage) -> Result<(Vec<Voter>, String)> {
        let mut v = Violations::new();
        let poll_id = v.id("poll_id", &page.poll_id);
        let option = v.optional_id("option_id", &page.option_id);
        let size = v.page_size("page_size", page.page_size, 100, 500);
        v.finish()?;
        let poll_id = poll_id.ok_or(Error::NotFound("poll"))?;
        let after = paging::decode_time_key("page_token", &page.page_token)?;
        let poll = self.visible_poll(who, &poll_id.to_string()).await?;
        if poll.settings.anonymous {
            return Err(Error::FailedPrecondition {
                reason: Reason::AnonymousPoll,
                message: "an anonymous poll shows nobody who voted for what",
            });
        }
        let view = self.view(who, poll).await?;
        if !view.sees_results {
            return Err(Error::FailedPrecondition {
                reason: Reason::ResultsHidden,
                message: "this poll's results are not visible to you yet",
            });
        }
        if let Some(option) = option
            && !view.poll.options.iter().any(|o| o.id == option)
        {
            return Err(Error::invalid("option_id", "not an option of this poll"));
        }
        let votes = self.store.voters(poll_id, option, after, size).await?;
        let next = paging::next_token(&votes, size, |v| paging::encode_time_key(v.time, v.user));
        let voters = votes
            .into_iter()
            .map(|vote| Voter {
                user_id: vote.user,
                picks: vote.picks,
                time: vote.time,
            })
            .collect();
        Ok((voters, next))
    }

    /// `viewer`'s view of each of the polls `ids` (the caller has checked that `viewer`
    /// may see them), by poll id.
    pub async fn views_by_id(&self, viewer: Uuid, ids: &[Uuid]) -> Result<HashMap<Uuid, PollView>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let polls = self.store.polls_by_id(ids).await?;
        Ok(self
            .views(viewer, polls)
            .await?
            .into_iter()
            .map(|view| (view.poll.id, view))
            .collect())
    }

    /// Closes the polls whose close time came (those of them no other node closed first).
    pub async fn close_due(&self, now: Time) -> Result<usize> {
        let closed = self.store.close_due(now, 100).await?;
        let count = closed.len();
        for committed in closed {
            self.publish(committed);
        }
        Ok(count)
    }

    async fn view(&self, viewer: Uuid, poll: PollRecord) -> Result<PollView> {
        let vote = self.store.vote(poll.id, viewer).await?;
        Ok(PollView::new(poll, vote.map(|v| v.picks)))
    }

    async fn views(&self, viewer: Uuid, polls: Vec<PollRecord>) -> Result<Vec<PollView>> {
        let ids: Vec<Uuid> = polls.iter().map(|p| p.id).collect();
        let mut votes: HashMap<Uuid, Vec<Uuid>> = self
            .store
            .votes_of(viewer, &ids)
            .await?
            .into_iter()
            .map(|(poll, vote)| (poll, vote.picks))
            .collect();
        Ok(polls
            .into_iter()
            .map(|poll| {
                let vote = votes.remove(&poll.id);
                PollView::new(poll, vote)
            })
            .collect())
    }

    /// The poll, when `who` is a member of its conversation; `NOT_FOUND` otherwise.
    async fn visible_poll(&self, who: Uuid, poll_id: &str) -> Result<PollRecord> {
        let poll = parse_poll_id(poll_id)?;
        let poll = self
            .store
            .poll(poll)
            .await?
            .ok_or(Error::NotFound("poll"))?;
        self.member(poll.conversation_id, who)
            .await
            .map_err(|_| Error::NotFound("poll"))?;
        Ok(poll)
    }

    async fn member(&self, conversation: Uuid, who: Uuid) -> Result<()> {
        self.chat
            .membership(conversation, who)
            .await?
            .map(|_| ())
            .ok_or(Error::NotFound("conversation"))
    }

    fn publish<T>(&self, committed: Committed<T>) -> T {
        crate::bus::publish_committed(&*self.bus, committed)
    }
}

/// One voter of a public poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub user_id: Uuid,
    pub picks: Vec<Uuid>,
    pub time: Time,
}

fn parse_poll_id(raw: &str) -> Result<Uuid> {
    let mut v = Violations::new();
    let id = v.id("poll_id", raw);
    v.finish()?;
    id.ok_or(Error::NotFound("poll"))
}

/// What the tally publisher works with.
struct TallyPublisher {
    store: Arc<dyn PollStore>,
    chat: Arc<dyn ChatStore>,
    bus: Arc<dyn EventBus>,
    limiter: Arc<dyn RateLimiter>,
}

/// Sends each changed poll's current tally to the members who may see it now: every
/// member while results are always visible, those who voted when they show after voting,
/// nobody before the close when they show after it (the close event carries the final
/// tally). Reading the tally here, after the coalescing, means the last update a burst
/// causes carries its final state. When another node sent this poll's tally within the
/// interval, this node tries again once it is over (`remark`): every change is followed
/// by an update that includes it.
async fn publish_tallies(
    mut changed: mpsc::UnboundedReceiver<Uuid>,
    remark: WeakCoalescer<Uuid>,
    publisher: TallyPublisher,
) {
    // The version each poll's tally had when this node last sent it: a later round that
    // finds nothing newer (its change went out with an earlier update) sends nothing.
    let mut sent: HashMap<Uuid, u64> = HashMap::new();
    while let Some(poll) = changed.recv().await {
        match publisher
            .limiter
            .check(TALLY_LIMIT, &poll.to_string())
            .await
        {
            Ok(()) => {}
            Err(Error::RateLimited { retry_after }) => {
                let remark = remark.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(retry_after).await;
                    remark.mark(poll);
                });
                continue;
            }
            Err(err) => tracing::warn!(error = %err, %poll, "tally rate not checked"),
        }
        match tally_signal(poll, &*publisher.store, &*publisher.chat).await {
            Ok(Some(signal)) if sent.get(&poll) < Some(&signal.tally.version) => {
                if sent.len() >= REMEMBERED_TALLIES {
                    sent.clear();
                }
                sent.insert(poll, signal.tally.version);
                publisher.bus.publish_signal(Signal::PollTally(signal));
            }
            Ok(_) => {}
            // The next change sends the tally again; a missed update loses nothing.
            Err(err) => tracing::warn!(error = %err, %poll, "cannot publish a poll's tally"),
        }
    }
}

async fn tally_signal(
    poll: Uuid,
    store: &dyn PollStore,
    chat: &dyn ChatStore,
) -> Result<Option<TallySignal>> {
    let Some(record) = store.poll(poll).await? else {
        return Ok(None);
    };
    if record.state != PollState::Open {
        return Ok(None);
    }
    let visibility = record.settings.results_visibility;
    if visibility == ResultsVisibility::AfterClose {
        return Ok(None);
    }
    let members = chat
        .members(record.conversation_id, None, MAX_RECIPIENTS)
        .await?
        .into_iter()
        .map(|m| m.user_id);
    let recipients = if visibility == ResultsVisibility::AfterVoting {
        // Voters who are still members (one who left hears nothing more of the group).
        let voters: std::collections::HashSet<Uuid> =
            store.voter_ids(poll).await?.into_iter().collect();
        members.filter(|m| voters.contains(m)).collect()
    } else {
        members.collect()
    };
    Ok(Some(TallySignal {
        conversation_id: record.conversation_id,
        poll_id: record.id,
        tally: record.tally,
        recipients,
    }))
}
