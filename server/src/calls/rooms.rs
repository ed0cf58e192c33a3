//! What a node knows of the calls it carries beyond their records: each participant's
//! session (their SFU peer, what they send) and their `WatchCall` stream. Memory only —
//! a session lives as long as its media connection, which lives on this node.
//!
//! One lock over every room; it is never held across an await (items go to watchers with
//! `try_send`), so the SFU's events and the RPCs never wait on each other for long.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::domain::call::Call;

/// Items a watcher may fall behind by before its stream is cut (it watches again and
/// starts from the call as it is).
const WATCH_BUFFER: usize = 256;
/// Items kept for a participant who is not watching yet (the SFU's first offer can come
/// before the `WatchCall` stream is open).
const MAX_QUEUED: usize = 64;

/// What a participant sends, as they said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaState {
    pub audio_muted: bool,
    pub video_muted: bool,
    pub screen_sharing: bool,
}

/// A joined participant's live part: what they send and, once connected to the SFU,
/// the media stream id of their tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    pub media: MediaState,
    pub stream_id: Option<Uuid>,
}

/// A call with the live part of those in it on this node.
#[derive(Debug, Clone, PartialEq)]
pub struct CallView {
    pub call: Call,
    pub live: HashMap<Uuid, Live>,
}

/// Why a watcher's stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    Ended,
    Left,
    Replaced,
    MediaLost,
    Shutdown,
    Removed,
}

/// One item on a `WatchCall` stream.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchItem {
    Call(Box<CallView>),
    Offer { id: u64, sdp: String },
    ActiveSpeaker(Option<Uuid>),
    Connected,
    Closing(Closing),
}

struct Session {
    /// Tells this session apart from a later one of the same user.
    generation: u64,
    peer: Option<Uuid>,
    media: MediaState,
    opened: Instant,
    watcher: Option<mpsc::Sender<WatchItem>>,
    queued: VecDeque<WatchItem>,
}

impl Session {
    fn deliver(&mut self, item: WatchItem) {
        if let Some(watcher) = &self.watcher {
            match watcher.try_send(item) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // Too far behind: cut the stream; watching again starts afresh.
                    self.watcher = None;
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(item)) => {
                    self.watcher = None;
                    self.queue(item);
                    return;
                }
            }
        }
        self.queue(item);
    }

    fn queue(&mut self, item: WatchItem) {
        if self.queued.len() < MAX_QUEUED {
            self.queued.push_back(item);
        }
    }

    fn close(mut self, reason: Closing) -> Option<Uuid> {
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.try_send(WatchItem::Closing(reason));
        }
        self.peer
    }
}

/// The live state of the calls this node carries.
#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<Uuid, HashMap<Uuid, Session>>>,
    generations: std::sync::atomic::AtomicU64,
}

impl Rooms {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Uuid, HashMap<Uuid, Session>>) -> T) -> T {
        // A panic cannot leave a room half-changed (each change is one map operation),
        // so a poisoned lock's data is still good.
        let mut rooms = self
            .rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut rooms)
    }

    /// Opens `user`'s session in `call`, replacing theirs if any: its watcher is told
    /// (`Replaced`), and its SFU peer is returned to be removed.
    pub fn open(&self, call: Uuid, user: Uuid) -> Option<Uuid> {
        let generation = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let session = Session {
            generation,
            peer: None,
            media: MediaState::default(),
            opened: Instant::now(),
            watcher: None,
            queued: VecDeque::new(),
        };
        self.with(|rooms| {
            rooms
                .entry(call)
                .or_default()
                .insert(user, session)
                .and_then(|old| old.close(Closing::Replaced))
        })
    }

    /// Whether `user` has a session in `call` here.
    pub fn has(&self, call: Uuid, user: Uuid) -> bool {
        self.with(|rooms| {
            rooms
                .get(&call)
                .is_some_and(|room| room.contains_key(&user))
        })
    }

    /// Ends `user`'s session in `call` (its watcher told why); its SFU peer, to remove.
    pub fn close(&self, call: Uuid, user: Uuid, reason: Closing) -> Option<Uuid> {
        self.with(|rooms| {
            let room = rooms.get_mut(&call)?;
            let session = room.remove(&user);
            if room.is_empty() {
                rooms.remove(&call);
            }
            session?.close(reason)
        })
    }

    /// Ends every session of `call`; their SFU peers, to remove.
    pub fn close_all(&self, call: Uuid, reason: Closing) -> Vec<Uuid> {
        self.with(|rooms| {
            rooms
                .remove(&call)
                .map(|room| {
                    room.into_values()
                        .filter_map(|session| session.close(reason))
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// `user`'s watch stream of `call` (replacing an earlier one, told `Replaced`), with
    /// what was queued for it first; `None` without a session.
    pub fn watch(&self, call: Uuid, user: Uuid) -> Option<mpsc::Receiver<WatchItem>> {
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        self.with(|rooms| {
            let session = rooms.get_mut(&call)?.get_mut(&user)?;
            if let Some(old) = session.watcher.replace(sender.clone()) {
                let _ = old.try_send(WatchItem::Closing(Closing::Replaced));
            }
            while let Some(item) = session.queued.pop_front() {
                let _ = sender.try_send(item);
            }
            Some(receiver)
        })
    }

    /// Sends `item` to `user`'s watcher of `call` (or keeps it until they watch).
    pub fn send(&self, call: Uuid, user: Uuid, item: WatchItem) {
        self.with(|rooms| {
            if let Some(session) = rooms.get_mut(&call).and_then(|room| room.get_mut(&user)) {
                session.deliver(item);
            }
        });
    }

    /// Sends `item` to every watcher of `call`.
    pub fn broadcast(&self, call: Uuid, item: &WatchItem) {
        self.with(|rooms| {
            if let Some(room) = rooms.get_mut(&call) {
                for session in room.values_mut() {
                    session.deliver(item.clone());
                }
            }
        });
    }

    /// `user`'s SFU peer in `call`, with their session's generation.
    pub fn peer(&self, call: Uuid, user: Uuid) -> Option<(u64, Option<Uuid>)> {
        self.with(|rooms| {
            let session = rooms.get(&call)?.get(&user)?;
            Some((session.generation, session.peer))
        })
    }

    /// Records `peer` as `user`'s in `call`, if their session is still `generation`.
    pub fn set_peer(&self, call: Uuid, user: Uuid, generation: u64, peer: Uuid) -> bool {
        self.with(
            |rooms| match rooms.get_mut(&call).and_then(|room| room.get_mut(&user)) {
                Some(session) if session.generation == generation => {
                    session.peer = Some(peer);
                    true
                }
                _ => false,
            },
        )
    }

    /// Records what `user` sends in `call`; false without a session.
    pub fn set_media(&self, call: Uuid, user: Uuid, media: MediaState) -> bool {
        self.with(
            |rooms| match rooms.get_mut(&call).and_then(|room| room.get_mut(&user)) {
                Some(session) => {
                    session.media = media;
                    true
                }
                None => false,
            },
        )
    }

    /// The live part of everyone in `call` on this node.
    pub fn live(&self, call: Uuid) -> HashMap<Uuid, Live> {
        self.with(|rooms| {
            rooms
                .get(&call)
                .map(|room| {
                    room.iter()
                        .map(|(user, s)| {
                            let live = Live {
                                media: s.media,
                                stream_id: s.peer,
                            };
                            (*user, live)
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// Whose `peer` is in `call`, if anyone's.
    pub fn user_of_peer(&self, call: Uuid, peer: Uuid) -> Option<Uuid> {
        self.with(|rooms| {
            rooms
                .get(&call)?
                .iter()
                .find(|(_, s)| s.peer == Some(peer))
                .map(|(user, _)| *user)
        })
    }

    /// Sessions opened more than `grace` ago that never connected to the SFU, as (call,
    /// user): participants who joined and never sent an offer.
    pub fn unconnected(&self, grace: Duration) -> Vec<(Uuid, Uuid)> {
        self.with(|rooms| {
            rooms
                .iter()
                .flat_map(|(call, room)| {
                    room.iter()
                        .filter(|(_, s)| s.peer.is_none() && s.opened.elapsed() > grace)
                        .map(|(user, _)| (*call, *user))
                })
                .collect()
        })
    }

    /// Every call with a session here.
    pub fn calls(&self) -> Vec<Uuid> {
        self.with(|rooms| rooms.keys().copied().collect())
    }
}
