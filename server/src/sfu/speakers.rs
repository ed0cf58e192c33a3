//! Who is speaking in each room, from the audio level publishers put in every audio packet
//! (RFC 6464: 0 dBov is the loudest, -127 silence). Levels are smoothed, a voice must stand
//! out by a margin to take over, and the answer is checked a few times a second, so the
//! speaker does not flicker between two people talking at once.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use uuid::Uuid;

/// How often rooms are checked for a new speaker.
const CHECK_EVERY: Duration = Duration::from_millis(300);
/// Quieter than this (dBov) is not speaking.
const SILENT_BELOW: f32 = -50.0;
/// Weight of each new level in the running average.
const WEIGHT: f32 = 0.2;
/// A voice not heard this long is silent (muted, or gone).
const STALE: Duration = Duration::from_secs(1);
/// How much louder (dB) another voice must be to take over from the current speaker.
const MARGIN: f32 = 6.0;

#[derive(Default)]
pub struct Speakers {
    rooms: HashMap<Uuid, Room>,
    next_check: Option<Instant>,
}

#[derive(Default)]
struct Room {
    voices: HashMap<Uuid, Voice>,
    speaker: Option<Uuid>,
}

struct Voice {
    level: f32,
    heard: Instant,
}

impl Speakers {
    /// A publisher's audio level, as a packet carried it.
    pub fn heard(&mut self, room: Uuid, peer: Uuid, level: i8, now: Instant) {
        let level = f32::from(level.clamp(-127, 0));
        let voice = self
            .rooms
            .entry(room)
            .or_default()
            .voices
            .entry(peer)
            .or_insert(Voice { level, heard: now });
        let fresh = now.duration_since(voice.heard) < STALE;
        voice.level = if fresh {
            voice.level * (1.0 - WEIGHT) + level * WEIGHT
        } else {
            level
        };
        voice.heard = now;
    }

    /// The peer left the room.
    pub fn forget(&mut self, room: Uuid, peer: Uuid) {
        if let Some(voices) = self.rooms.get_mut(&room) {
            voices.voices.remove(&peer);
        }
    }

    /// When `changes` next has something to say.
    pub fn next_check(&self) -> Instant {
        let now = Instant::now();
        match self.next_check {
            Some(at) if !self.rooms.is_empty() => at.max(now),
            _ => now + Duration::from_secs(1),
        }
    }

    /// The rooms whose speaker changed (to someone, or to nobody), at most every
    /// `CHECK_EVERY`.
    pub fn changes(&mut self, now: Instant) -> Vec<(Uuid, Option<Uuid>)> {
        if self.next_check.is_some_and(|at| now < at) {
            return Vec::new();
        }
        self.next_check = Some(now + CHECK_EVERY);
        let mut changed = Vec::new();
        for (id, room) in &mut self.rooms {
            let speaking = |voice: &Voice| {
                now.duration_since(voice.heard) < STALE && voice.level >= SILENT_BELOW
            };
            let loudest = room
                .voices
                .iter()
                .filter(|(_, voice)| speaking(voice))
                .max_by(|a, b| a.1.level.total_cmp(&b.1.level));
            let current = room
                .speaker
                .and_then(|peer| room.voices.get(&peer).map(|voice| (peer, voice)))
                .filter(|(_, voice)| speaking(voice));
            let next = match (current, loudest) {
                (Some((peer, voice)), Some((_, other))) if other.level < voice.level + MARGIN => {
                    Some(peer)
                }
                (_, loudest) => loudest.map(|(peer, _)| *peer),
            };
            if next != room.speaker {
                room.speaker = next;
                changed.push((*id, next));
            }
        }
        self.rooms
            .retain(|_, room| !room.voices.is_empty() || room.speaker.is_some());
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loudest_voice_speaks_and_holds_until_clearly_outspoken() {
        let mut speakers = Speakers::default();
        let (room, ann, bob) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        for ms in (0..600).step_by(20) {
            speakers.heard(room, ann, -20, at(ms));
            speakers.heard(room, bob, -70, at(ms));
        }
        assert_eq!(speakers.changes(at(600)), [(room, Some(ann))]);
        // Bob a little louder than Ann: Ann keeps the floor.
        for ms in (600..1200).step_by(20) {
            speakers.heard(room, ann, -20, at(ms));
            speakers.heard(room, bob, -18, at(ms));
        }
        assert!(speakers.changes(at(1200)).is_empty());
        // Ann stops (no packets: muted); Bob takes over.
        for ms in (1200..2600).step_by(20) {
            speakers.heard(room, bob, -18, at(ms));
        }
        assert_eq!(speakers.changes(at(2600)), [(room, Some(bob))]);
        // Bob goes quiet: nobody speaks.
        for ms in (2600..4000).step_by(20) {
            speakers.heard(room, bob, -90, at(ms));
        }
        assert_eq!(speakers.changes(at(4000)), [(room, None)]);
    }
}
