//! The per-device event stream: replay from the store, then live from the bus, with no
//! loss, no duplicates and per-user order, using each user's dense feed sequence.
//!
//! Why it is gap-free: every event is committed to the recipients' feeds (each taking the
//! next `feed_seq`) before it is published. The stream subscribes to the bus *before*
//! reading the backlog, skips what it already sent, and when a live event skips ahead
//! (`feed_seq > last + 1`, because publishes from concurrent writers can overtake each
//! other, or the bus dropped some) it holds it back until the events before it arrive
//! live, or reads them from the store after [`HOLE_WAIT`].

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    auth::{Principal, RevokedSessions},
    bus::{BusMessage, EventBus},
    config::StreamConfig,
    domain::{FeedItem, Signal},
    error::{Error, Result},
    presence::Presence,
    store::ChatStore,
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

/// What the stream tells a device. Every item carries the cursor to resume from.
#[derive(Debug, Clone)]
pub enum StreamItem {
    CaughtUp {
        cursor: u64,
    },
    Heartbeat {
        cursor: u64,
    },
    Gap {
        cursor: u64,
    },
    Event(FeedItem),
    Closing {
        reason: ClosingReason,
        cursor: u64,
    },
    /// Ephemeral: the cursor is the stream's position, unchanged by it.
    Signal {
        signal: Arc<Signal>,
        cursor: u64,
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

/// Encodes a feed position as an opaque cursor.
pub fn encode_cursor(feed_seq: u64) -> String {
    format!("1:{feed_seq}")
}

fn decode_cursor(raw: &str) -> Result<Option<u64>> {
    if raw.is_empty() {
        return Ok(None);
    }
    raw.strip_prefix("1:")
        .and_then(|n| n.parse().ok())
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
        let head = self.store.feed_head(who.user_id).await.and_then(|head| {
            if resume_from.is_some_and(|c| c > head) {
                Err(Error::invalid(
                    "cursor",
                    "cursor is ahead of this user's events",
                ))
            } else {
                Ok(head)
            }
        });
        let head = match head {
            Ok(head) => head,
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
            last: head,
            session: who.session_id,
            revoked: Arc::clone(&self.revoked),
            poll_feed: self.bus.lossy(),
            sent: 0,
            shutdown: self.shutdown.clone(),
            held: BTreeMap::new(),
            hole_deadline: None,
        };
        let plan = match resume_from {
            None => Start::Live,
            Some(c) if head - c > self.config.max_replay_events => Start::Gap,
            Some(c) => Start::Replay(c),
        };
        let heartbeat = Duration::from_secs(self.config.heartbeat_secs.max(1));
        let presence = Arc::clone(&self.presence);
        let bus = Arc::clone(&self.bus);
        let (user, session) = (who.user_id, who.session_id);
        presence
            .stream_opened(user, session, presence_ttl(heartbeat))
            .await;
        tokio::spawn(async move {
            if let Err(err) = stream.run(plan, live, heartbeat, &presence).await {
                tracing::warn!(%user, error = %err, "event stream ended with an error");
            }
            presence.stream_ended(user, session);
            bus.detach(user);
        });
        Ok(rx)
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
    Replay(u64),
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
    /// The feed position of the last item handed to the client.
    last: u64,
    /// The session the stream belongs to: when it is revoked, the stream ends.
    session: Uuid,
    revoked: Arc<RevokedSessions>,
    /// Re-read the feed on each heartbeat (the bus may lose messages).
    poll_feed: bool,
    /// Items handed to the client so far (to time heartbeats by this stream's silence).
    sent: u64,
    shutdown: CancellationToken,
    /// Live events that arrived ahead of a hole, by feed position.
    held: BTreeMap<u64, FeedItem>,
    /// When the hole before `held` is read from the store if it has not filled by then.
    hole_deadline: Option<tokio::time::Instant>,
}

impl Stream {
    async fn run(
        mut self,
        start: Start,
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
                match self.catch_up(head).await? {
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
        loop {
            let sent_before = self.sent;
            if let Some(deadline) = self.hole_deadline
                && hole_timer.deadline() != deadline
            {
                hole_timer.as_mut().reset(deadline);
            }
            let step = tokio::select! {
                received = live.recv() => match received {
                    Ok(BusMessage::Event(published)) => match published.item_for(self.user) {
                        Some(item) => self.deliver(item).await?,
                        None => Ok(()),
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
                _ = shutdown.cancelled() => {
                    let closing = StreamItem::Closing { reason: ClosingReason::Shutdown, cursor: self.last };
                    let _ = self.out.try_send(closing);
                    return Ok(());
                }
                _ = self.out.closed() => return Ok(()),
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
        let head = self.store.feed_head(self.user).await?;
        if let Err(stop) = self.catch_up(head).await? {
            return Ok(Err(stop));
        }
        Ok(self.release_held().await)
    }

    /// Delivers a live item, or holds it back until the events before it arrive.
    async fn deliver(&mut self, item: FeedItem) -> Result<Result<(), Stop>> {
        if item.feed_seq <= self.last {
            return Ok(Ok(()));
        }
        if item.feed_seq > self.last + 1 {
            self.held.insert(item.feed_seq, item);
            if self.held.len() > MAX_HELD {
                return self.fill_hole().await;
            }
            self.hole_deadline
                .get_or_insert_with(|| tokio::time::Instant::now() + HOLE_WAIT);
            return Ok(Ok(()));
        }
        if let Err(stop) = self.send_event(item).await {
            return Ok(Err(stop));
        }
        Ok(self.release_held().await)
    }

    /// Reads the hole before the held-back events from the store, then sends those.
    async fn fill_hole(&mut self) -> Result<Result<(), Stop>> {
        let Some(&until) = self.held.keys().next_back() else {
            self.hole_deadline = None;
            return Ok(Ok(()));
        };
        // Everything up to the newest held event: the store has those too.
        if let Err(stop) = self.catch_up(until).await? {
            return Ok(Err(stop));
        }
        Ok(self.release_held().await)
    }

    /// Sends the held-back events that follow on from `self.last`, forgets those already
    /// sent (from the store), and keeps the deadline only while a hole remains.
    async fn release_held(&mut self) -> Result<(), Stop> {
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() > self.last + 1 {
                return Ok(());
            }
            let item = entry.remove();
            if item.feed_seq == self.last + 1 {
                self.send_event(item).await?;
            }
        }
        self.hole_deadline = None;
        Ok(())
    }

    /// Sends everything in the store after `self.last` up to `until`.
    async fn catch_up(&mut self, until: u64) -> Result<Result<(), Stop>> {
        while self.last < until {
            let batch = self
                .store
                .feed(self.user, self.last, REPLAY_BATCH.min(until - self.last))
                .await?;
            // Retention may have trimmed what this stream had not read yet (a replay at
            // the very edge of the window while events keep coming): say so with a gap
            // rather than skip silently.
            let resumes_at = batch.first().map_or(until, |item| item.feed_seq - 1);
            if resumes_at > self.last {
                if let Err(stop) = self
                    .send_replayed(StreamItem::Gap { cursor: resumes_at })
                    .await
                {
                    return Ok(Err(stop));
                }
                self.last = resumes_at;
            }
            for item in batch {
                let seq = item.feed_seq;
                if let Err(stop) = self.send_replayed(StreamItem::Event(item)).await {
                    return Ok(Err(stop));
                }
                self.last = seq;
            }
        }
        Ok(Ok(()))
    }

    async fn send_event(&mut self, item: FeedItem) -> Result<(), Stop> {
        let seq = item.feed_seq;
        self.send(StreamItem::Event(item)).await?;
        self.last = seq;
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
