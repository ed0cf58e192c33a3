//! The per-device event stream: replay from the store, then live from the bus, with no
//! loss, no duplicates and per-conversation order, using two dense sequences: the user's
//! feed and the shared timeline of conversations fanned out on read
//! (`store::sql::shared_timeline`). The cursor is the stream's position in both.
//!
//! Why it is gap-free: every event is committed to the recipients' feeds (each taking the
//! next `feed_seq`) or to the next timeline position before it is published. The stream
//! subscribes to the bus *before* reading the backlog, skips what it already sent, and
//! when a live event skips ahead (`> last + 1` in its sequence, because publishes from
//! concurrent writers can overtake each other, or the bus dropped some) it holds it back
//! until the events before it arrive live, or reads them from the store after
//! [`HOLE_WAIT`]. A stream follows every timeline position, its user's or not, so that it
//! can tell a hole from someone else's event.
//!
//! Why order holds across the two: a conversation moves to the timeline for good, and its
//! first timeline event says so; a replay reads the feed before the timeline (both heads
//! read at one instant), and live, that first event waits until the feed is read up to
//! date.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    auth::{Principal, RevokedSessions},
    bus::{BusMessage, EventBus},
    config::StreamConfig,
    domain::{Event, FeedItem, Published, Signal, TimelineSpot},
    error::{Error, Result},
    presence::Presence,
    store::{ChatStore, Heads},
};

/// Events read from the store per query while catching up.
const REPLAY_BATCH: u64 = 500;
/// How long a live event that skipped ahead waits for the ones before it to arrive live
/// before they are read from the store. Concurrent writers commit in one order and publish
/// in another (a group commit wakes its senders together), so a hole is usually filled a
/// moment later; reading it at once made every stream of a large group query the store for
/// each overtaken event. A hole the bus really lost is read after this delay.
const HOLE_WAIT: Duration = Duration::from_millis(100);
/// Most live events held back behind a hole; past this the hole is read from the store.
const MAX_HELD: usize = 256;

/// Where a stream stands: the last feed position and the last timeline position it has
/// handed to the client (or passed over, on the timeline, as someone else's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    pub feed: u64,
    pub timeline: u64,
}

impl From<Heads> for Cursor {
    fn from(heads: Heads) -> Self {
        Self {
            feed: heads.feed,
            timeline: heads.timeline,
        }
    }
}

/// An event handed to a device, with the cursor that resumes right after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub cursor: Cursor,
    pub event: Arc<Event>,
}

/// What the stream tells a device. Every item carries the cursor to resume from.
#[derive(Debug, Clone)]
pub enum StreamItem {
    CaughtUp {
        cursor: Cursor,
    },
    Heartbeat {
        cursor: Cursor,
    },
    Gap {
        cursor: Cursor,
    },
    Event(Delivered),
    Closing {
        reason: ClosingReason,
        cursor: Cursor,
    },
    /// Ephemeral: the cursor is the stream's position, unchanged by it.
    Signal {
        signal: Arc<Signal>,
        cursor: Cursor,
    },
}

/// Why the server ends a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosingReason {
    SlowConsumer,
    Shutdown,
    /// The device signed out or its session was revoked.
    SessionEnded,
}

/// Encodes a stream position as an opaque cursor: `1:{feed}` while the timeline is
/// empty (the only form before fan-out on read, so those cursors still resume), else
/// `2:{feed}:{timeline}`.
pub fn encode_cursor(cursor: Cursor) -> String {
    if cursor.timeline == 0 {
        format!("1:{}", cursor.feed)
    } else {
        format!("2:{}:{}", cursor.feed, cursor.timeline)
    }
}

fn decode_cursor(raw: &str) -> Result<Option<Cursor>> {
    if raw.is_empty() {
        return Ok(None);
    }
    let number = |n: &str| n.parse::<u64>().ok();
    let decoded = if let Some(feed) = raw.strip_prefix("1:") {
        // Issued before anything was on the timeline: all of it lies after this cursor.
        number(feed).map(|feed| Cursor { feed, timeline: 0 })
    } else if let Some(both) = raw.strip_prefix("2:") {
        both.split_once(':').and_then(|(feed, timeline)| {
            Some(Cursor {
                feed: number(feed)?,
                timeline: number(timeline)?,
            })
        })
    } else {
        None
    };
    decoded
        .map(Some)
        .ok_or_else(|| Error::invalid("cursor", "not a cursor from this server"))
}

/// The events domain service.
pub struct Events {
    store: Arc<dyn ChatStore>,
    bus: Arc<dyn EventBus>,
    config: StreamConfig,
    revoked: Arc<RevokedSessions>,
    presence: Arc<Presence>,
    shutdown: CancellationToken,
}

impl Events {
    pub fn new(
        store: Arc<dyn ChatStore>,
        bus: Arc<dyn EventBus>,
        config: StreamConfig,
        revoked: Arc<RevokedSessions>,
        presence: Arc<Presence>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            store,
            bus,
            config,
            revoked,
            presence,
            shutdown,
        }
    }

    /// Opens a stream for `who`, resuming after `cursor` (empty: start live).
    pub async fn subscribe(
        &self,
        who: &Principal,
        cursor: &str,
    ) -> Result<mpsc::Receiver<StreamItem>> {
        let resume_from = decode_cursor(cursor)?;
        // Subscribe first, and have other nodes route this user's events here, so nothing
        // committed from here on can be missed.
        let live = self.bus.subscribe();
        self.bus.attach(who.user_id).await;
        let (heads, plan) = match self.plan(who.user_id, resume_from).await {
            Ok(planned) => planned,
            Err(err) => {
                self.bus.detach(who.user_id);
                return Err(err);
            }
        };
        // One slot stays free for the `Closing` item that tells a slow reader to resume.
        let (tx, rx) = mpsc::channel(self.config.buffer_events.max(2) + 1);
        let stream = Stream {
            user: who.user_id,
            store: Arc::clone(&self.store),
            out: tx,
            last: heads.into(),
            session: who.session_id,
            revoked: Arc::clone(&self.revoked),
            poll_feed: self.bus.lossy(),
            sent: 0,
            shutdown: self.shutdown.clone(),
            held: BTreeMap::new(),
            held_timeline: BTreeMap::new(),
            hole_deadline: None,
        };
        let heartbeat = Duration::from_secs(self.config.heartbeat_secs.max(1));
        let presence = Arc::clone(&self.presence);
        let bus = Arc::clone(&self.bus);
        let (user, session) = (who.user_id, who.session_id);
        presence
            .stream_opened(user, session, presence_ttl(heartbeat))
            .await;
        tokio::spawn(async move {
            if let Err(err) = stream.run(plan, heads, live, heartbeat, &presence).await {
                tracing::warn!(%user, error = %err, "event stream ended with an error");
            }
            presence.stream_ended(user, session);
            bus.detach(user);
        });
        Ok(rx)
    }
}

impl Events {
    /// The heads to start from, and how: live, replaying from `resume_from`, or with a
    /// gap when more than `max_replay_events` of this user's events lie after it.
    async fn plan(&self, user: Uuid, resume_from: Option<Cursor>) -> Result<(Heads, Start)> {
        let heads = self.store.stream_heads(user).await?;
        let Some(from) = resume_from else {
            return Ok((heads, Start::Live));
        };
        if from.feed > heads.feed || from.timeline > heads.timeline {
            return Err(Error::invalid(
                "cursor",
                "cursor is ahead of this user's events",
            ));
        }
        let max = self.config.max_replay_events;
        let in_feed = heads.feed - from.feed;
        if in_feed > max {
            return Ok((heads, Start::Gap));
        }
        // Counting stops one past what may still be replayed.
        let on_timeline = if from.timeline < heads.timeline {
            self.store
                .timeline_backlog(user, from.timeline, heads.timeline, max - in_feed + 1)
                .await?
        } else {
            0
        };
        if in_feed + on_timeline > max {
            return Ok((heads, Start::Gap));
        }
        Ok((heads, Start::Replay(from)))
    }
}

/// A device counts as online this long after its stream last reported in (every
/// heartbeat period), so a node that dies takes its devices offline within three periods.
fn presence_ttl(heartbeat: Duration) -> Duration {
    heartbeat * 3
}

enum Start {
    Live,
    Gap,
    Replay(Cursor),
}

/// Why a stream task stops sending.
enum Stop {
    /// The client went away or was sent `Closing`.
    Done,
}

struct Stream {
    user: Uuid,
    store: Arc<dyn ChatStore>,
    out: mpsc::Sender<StreamItem>,
    /// How far the stream has gone in the feed and on the timeline.
    last: Cursor,
    /// The session the stream belongs to: when it is revoked, the stream ends.
    session: Uuid,
    revoked: Arc<RevokedSessions>,
    /// Re-read the feed on each heartbeat (the bus may lose messages).
    poll_feed: bool,
    /// Items handed to the client so far (to time heartbeats by this stream's silence).
    sent: u64,
    shutdown: CancellationToken,
    /// Live feed events that arrived ahead of a hole, by feed position.
    held: BTreeMap<u64, FeedItem>,
    /// Live timeline positions that arrived ahead of a hole (with the event when it is
    /// this user's).
    held_timeline: BTreeMap<u64, OnTimeline>,
    /// When the hole before `held` is read from the store if it has not filled by then.
    hole_deadline: Option<tokio::time::Instant>,
}

/// A live timeline position as a stream sees it.
struct OnTimeline {
    spot: TimelineSpot,
    /// `None` when the event is not for this stream's user.
    event: Option<Arc<Event>>,
}

impl OnTimeline {
    fn of(published: &Published, spot: TimelineSpot, user: Uuid) -> Self {
        Self {
            spot,
            event: published
                .recipients
                .contains_key(&user)
                .then(|| Arc::clone(&published.event)),
        }
    }
}

impl Stream {
    async fn run(
        mut self,
        start: Start,
        heads: Heads,
        mut live: tokio::sync::broadcast::Receiver<BusMessage>,
        heartbeat: Duration,
        presence: &Presence,
    ) -> Result<()> {
        let shutdown = self.shutdown.clone();
        let head = self.last;
        let begun = match start {
            Start::Live => self.send(StreamItem::CaughtUp { cursor: head }).await,
            // What follows a gap is live, so `caught_up` comes right after it.
            Start::Gap => match self.send(StreamItem::Gap { cursor: head }).await {
                Ok(()) => self.send(StreamItem::CaughtUp { cursor: head }).await,
                stop => stop,
            },
            Start::Replay(cursor) => {
                self.last = cursor;
                match self.catch_up(heads).await? {
                    Ok(()) => self.send(StreamItem::CaughtUp { cursor: self.last }).await,
                    Err(stop) => Err(stop),
                }
            }
        };
        if begun.is_err() {
            return Ok(());
        }
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        // Its own timer: heartbeats are postponed by traffic, presence must not be.
        let mut presence_ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        // One timer for the stream's life, armed while live events wait behind a hole.
        let hole_timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(hole_timer);
        // Made once, not per turn of the loop: each registers with a lock the first time it
        // is polled and unregisters when dropped, which per delivery was a measurable cost.
        let shutting_down = shutdown.cancelled();
        tokio::pin!(shutting_down);
        // A second handle on the channel to wait on: the loop sends through `self.out`.
        let watched = self.out.clone();
        let reader_gone = watched.closed();
        tokio::pin!(reader_gone);
        loop {
            let sent_before = self.sent;
            if let Some(deadline) = self.hole_deadline
                && hole_timer.deadline() != deadline
            {
                hole_timer.as_mut().reset(deadline);
            }
            let step = tokio::select! {
                received = live.recv() => match received {
                    Ok(BusMessage::Event(published)) => match published.timeline {
                        Some(spot) => {
                            let seen = OnTimeline::of(&published, spot, self.user);
                            self.deliver_timeline(seen).await?
                        }
                        None => match published.item_for(self.user) {
                            Some(item) => self.deliver(item).await?,
                            None => Ok(()),
                        },
                    },
                    // The bus may have missed events, or outran us: the store has them all.
                    Ok(BusMessage::Resync) | Err(RecvError::Lagged(_)) => self.resync().await?,
                    // Revocations from other nodes: the check below ends this stream if it
                    // is this session's (the shared set may not have it yet, so compare too).
                    Ok(BusMessage::SessionRevoked(session)) if session == self.session => {
                        self.revoked.insert(session);
                        Ok(())
                    }
                    Ok(BusMessage::SessionRevoked(_)) => Ok(()),
                    Ok(BusMessage::Signal(signal)) => {
                        if signal.recipients().contains(&self.user) {
                            self.send_ephemeral(signal);
                        }
                        Ok(())
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
                _ = ticker.tick() => {
                    // On a lossy bus an event may never be announced here; checking the
                    // feed once per heartbeat bounds how late it can be.
                    match if self.poll_feed { self.resync().await? } else { Ok(()) } {
                        Ok(()) => self.send(StreamItem::Heartbeat { cursor: self.last }).await,
                        stop => stop,
                    }
                }
                () = &mut hole_timer, if self.hole_deadline.is_some() => {
                    self.fill_hole().await?
                }
                _ = presence_ticker.tick() => {
                    presence.stream_alive(self.user, self.session, presence_ttl(heartbeat));
                    Ok(())
                }
                () = &mut shutting_down => {
                    let closing = StreamItem::Closing { reason: ClosingReason::Shutdown, cursor: self.last };
                    let _ = self.out.try_send(closing);
                    return Ok(());
                }
                () = &mut reader_gone => return Ok(()),
            };
            if step.is_err() {
                return Ok(());
            }
            // Checked after every event and heartbeat: a signed-out device stops hearing
            // anything within one heartbeat period.
            if self.revoked.contains(self.session) {
                let closing = StreamItem::Closing {
                    reason: ClosingReason::SessionEnded,
                    cursor: self.last,
                };
                let _ = self.out.try_send(closing);
                return Ok(());
            }
            // A heartbeat is due after a quiet period *on this stream*: events for other
            // users (every node sees them all on a shared bus) must not postpone it.
            if self.sent != sent_before {
                ticker.reset();
            }
        }
    }

    /// Sends whatever the store has beyond what this stream delivered.
    async fn resync(&mut self) -> Result<Result<(), Stop>> {
        let heads = self.store.stream_heads(self.user).await?;
        if let Err(stop) = self.catch_up(heads).await? {
            return Ok(Err(stop));
        }
        self.release_held().await
    }

    /// Delivers a live feed item, or holds it back until the events before it arrive.
    async fn deliver(&mut self, item: FeedItem) -> Result<Result<(), Stop>> {
        if item.feed_seq <= self.last.feed {
            return Ok(Ok(()));
        }
        if item.feed_seq > self.last.feed + 1 {
            self.held.insert(item.feed_seq, item);
            return self.wait_for_hole().await;
        }
        if let Err(stop) = self.send_event(item).await {
            return Ok(Err(stop));
        }
        self.release_held().await
    }

    /// Takes a live timeline position: delivers its event if it is this user's, or holds
    /// it back until the positions before it arrive.
    async fn deliver_timeline(&mut self, seen: OnTimeline) -> Result<Result<(), Stop>> {
        let position = seen.spot.position;
        if position <= self.last.timeline {
            return Ok(Ok(()));
        }
        if position > self.last.timeline + 1 {
            self.held_timeline.insert(position, seen);
            return self.wait_for_hole().await;
        }
        if let Err(stop) = self.advance_timeline(seen).await? {
            return Ok(Err(stop));
        }
        self.release_held().await
    }

    /// Starts (or keeps) the wait for a hole to fill, or reads it now if too much is held.
    async fn wait_for_hole(&mut self) -> Result<Result<(), Stop>> {
        if self.held.len() + self.held_timeline.len() > MAX_HELD {
            return self.fill_hole().await;
        }
        self.hole_deadline
            .get_or_insert_with(|| tokio::time::Instant::now() + HOLE_WAIT);
        Ok(Ok(()))
    }

    /// Moves past the next timeline position, delivering its event if it is this user's.
    /// A conversation's first timeline event comes after its last feed event, which may
    /// not have arrived live yet: the feed is read up to date first.
    async fn advance_timeline(&mut self, seen: OnTimeline) -> Result<Result<(), Stop>> {
        if seen.spot.opens && seen.event.is_some() {
            let heads = self.store.stream_heads(self.user).await?;
            if let Err(stop) = self.catch_up_feed(heads.feed).await? {
                return Ok(Err(stop));
            }
        }
        let position = seen.spot.position;
        if let Some(event) = seen.event {
            let cursor = Cursor {
                feed: self.last.feed,
                timeline: position,
            };
            if let Err(stop) = self
                .send(StreamItem::Event(Delivered { cursor, event }))
                .await
            {
                return Ok(Err(stop));
            }
        }
        self.last.timeline = position;
        Ok(Ok(()))
    }

    /// Reads the holes before the held-back events from the store, then sends those.
    async fn fill_hole(&mut self) -> Result<Result<(), Stop>> {
        // Everything up to the newest held event: the store has those too.
        if let Some(&until) = self.held.keys().next_back()
            && let Err(stop) = self.catch_up_feed(until).await?
        {
            return Ok(Err(stop));
        }
        if let Some(&until) = self.held_timeline.keys().next_back()
            && let Err(stop) = self.catch_up_timeline(until).await?
        {
            return Ok(Err(stop));
        }
        self.release_held().await
    }

    /// Sends the held-back events that follow on from `self.last`, forgets those already
    /// sent (from the store), and keeps the deadline only while a hole remains.
    async fn release_held(&mut self) -> Result<Result<(), Stop>> {
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() > self.last.feed + 1 {
                break;
            }
            let item = entry.remove();
            if item.feed_seq == self.last.feed + 1
                && let Err(stop) = self.send_event(item).await
            {
                return Ok(Err(stop));
            }
        }
        while let Some(entry) = self.held_timeline.first_entry() {
            if *entry.key() > self.last.timeline + 1 {
                break;
            }
            let seen = entry.remove();
            if seen.spot.position == self.last.timeline + 1
                && let Err(stop) = self.advance_timeline(seen).await?
            {
                return Ok(Err(stop));
            }
        }
        if self.held.is_empty() && self.held_timeline.is_empty() {
            self.hole_deadline = None;
        }
        Ok(Ok(()))
    }

    /// Sends everything in the store after `self.last` up to `until`: the feed first,
    /// then the timeline (see the module comment for why that order).
    async fn catch_up(&mut self, until: Heads) -> Result<Result<(), Stop>> {
        if let Err(stop) = self.catch_up_feed(until.feed).await? {
            return Ok(Err(stop));
        }
        // Retention trimmed timeline events this stream had not read: say so with a gap
        // rather than skip silently.
        if self.last.timeline < until.trimmed {
            let cursor = Cursor {
                feed: self.last.feed,
                timeline: until.trimmed,
            };
            if let Err(stop) = self.send_replayed(StreamItem::Gap { cursor }).await {
                return Ok(Err(stop));
            }
            self.last.timeline = until.trimmed;
        }
        self.catch_up_timeline(until.timeline).await
    }

    /// Sends the feed in the store after `self.last.feed` up to `until`.
    async fn catch_up_feed(&mut self, until: u64) -> Result<Result<(), Stop>> {
        while self.last.feed < until {
            let batch = self
                .store
                .feed(
                    self.user,
                    self.last.feed,
                    REPLAY_BATCH.min(until - self.last.feed),
                )
                .await?;
            // Retention may have trimmed what this stream had not read yet (a replay at
            // the very edge of the window while events keep coming): say so with a gap
            // rather than skip silently.
            let resumes_at = batch.first().map_or(until, |item| item.feed_seq - 1);
            if resumes_at > self.last.feed {
                let cursor = Cursor {
                    feed: resumes_at,
                    timeline: self.last.timeline,
                };
                if let Err(stop) = self.send_replayed(StreamItem::Gap { cursor }).await {
                    return Ok(Err(stop));
                }
                self.last.feed = resumes_at;
            }
            for item in batch {
                let cursor = Cursor {
                    feed: item.feed_seq,
                    timeline: self.last.timeline,
                };
                let event = item.event;
                if let Err(stop) = self
                    .send_replayed(StreamItem::Event(Delivered { cursor, event }))
                    .await
                {
                    return Ok(Err(stop));
                }
                self.last.feed = cursor.feed;
            }
        }
        Ok(Ok(()))
    }

    /// Sends this user's timeline events in the store after `self.last.timeline` up to
    /// `until`, and moves past the positions in between that are someone else's.
    async fn catch_up_timeline(&mut self, until: u64) -> Result<Result<(), Stop>> {
        while self.last.timeline < until {
            let batch = self
                .store
                .timeline(self.user, self.last.timeline, until, REPLAY_BATCH)
                .await?;
            let whole = u64::try_from(batch.len()).unwrap_or(u64::MAX) < REPLAY_BATCH;
            for item in batch {
                let cursor = Cursor {
                    feed: self.last.feed,
                    timeline: item.position,
                };
                let event = item.event;
                if let Err(stop) = self
                    .send_replayed(StreamItem::Event(Delivered { cursor, event }))
                    .await
                {
                    return Ok(Err(stop));
                }
                self.last.timeline = cursor.timeline;
            }
            if whole {
                self.last.timeline = until;
            }
        }
        Ok(Ok(()))
    }

    async fn send_event(&mut self, item: FeedItem) -> Result<(), Stop> {
        let cursor = Cursor {
            feed: item.feed_seq,
            timeline: self.last.timeline,
        };
        let event = item.event;
        self.send(StreamItem::Event(Delivered { cursor, event }))
            .await?;
        self.last.feed = cursor.feed;
        Ok(())
    }

    /// Queues an item read from the store, waiting for the client to make room: waiting
    /// slows nobody else (the bus keeps buffering, and a lag is re-read from the store).
    /// Two permits are taken and one handed back, so the `Closing` slot stays free.
    async fn send_replayed(&mut self, item: StreamItem) -> Result<(), Stop> {
        let mut permits = tokio::select! {
            permits = self.out.reserve_many(2) => permits.map_err(|_| Stop::Done)?,
            _ = self.shutdown.cancelled() => return Err(Stop::Done),
        };
        if let Some(permit) = permits.next() {
            permit.send(item);
            self.sent += 1;
        }
        Ok(())
    }

    /// Queues an ephemeral item if there is room to spare; otherwise drops it (it is
    /// not worth cutting a stream for, and never replayed anyway).
    fn send_ephemeral(&mut self, signal: Arc<Signal>) {
        if self.out.capacity() > 2 {
            let item = StreamItem::Signal {
                signal,
                cursor: self.last,
            };
            if self.out.try_send(item).is_ok() {
                self.sent += 1;
            }
        }
    }

    /// Queues a live item without waiting: a client whose buffer is full gets `Closing` in the
    /// reserved slot and must resume from its cursor.
    async fn send(&mut self, item: StreamItem) -> Result<(), Stop> {
        if self.out.is_closed() {
            return Err(Stop::Done);
        }
        if self.out.capacity() <= 1 {
            let closing = StreamItem::Closing {
                reason: ClosingReason::SlowConsumer,
                cursor: self.last,
            };
            let _ = self.out.try_send(closing);
            return Err(Stop::Done);
        }
        self.out.try_send(item).map_err(|_| Stop::Done)?;
        self.sent += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_in_both_forms() {
        for cursor in [
            Cursor::default(),
            Cursor {
                feed: 7,
                timeline: 0,
            },
            Cursor {
                feed: 0,
                timeline: 3,
            },
            Cursor {
                feed: u64::MAX,
                timeline: u64::MAX,
            },
        ] {
            let encoded = encode_cursor(cursor);
            assert_eq!(decode_cursor(&encoded).expect(&encoded), Some(cursor));
        }
        // Nothing on the timeline yet: the form every earlier server issued.
        assert_eq!(
            encode_cursor(Cursor {
                feed: 7,
                timeline: 0
            }),
            "1:7"
        );
        assert_eq!(decode_cursor("").expect("empty"), None);
    }

    #[test]
    fn foreign_cursors_are_invalid_arguments() {
        for raw in [
            "7",
            "1:",
            "1:x",
            "1:-1",
            "2:",
            "2:5",
            "2:5:",
            "2::5",
            "2:a:1",
            "2:1:2:3",
            "3:1:2",
            "1:99999999999999999999",
        ] {
            match decode_cursor(raw) {
                Err(Error::InvalidArgument(violations)) => {
                    assert_eq!(violations[0].field, "cursor", "{raw}")
                }
                other => panic!("{raw}: {other:?}"),
            }
        }
    }
}
