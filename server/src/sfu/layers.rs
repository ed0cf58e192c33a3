//! Simulcast: a publisher may send its video in layers (the same picture at several sizes),
//! and each subscriber gets the one its quality asks for. A switch waits for a keyframe of
//! the new layer, and the subscriber's media times stay continuous across it (each layer
//! counts time from its own random start).

use std::time::{Duration, Instant};

use str0m::media::{MediaTime, Rid};

/// How good a subscriber wants the video it receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quality {
    Low,
    Medium,
    #[default]
    High,
}

/// Keyframe requests for a layer a subscriber waits for, at most this often.
pub const KEYFRAME_EVERY: Duration = Duration::from_secs(1);

/// A publisher's layers, lowest first. Browsers name them by convention — `q`/`h`/`f`
/// (quarter, half, full) or `l`/`m`/`h` — and those are ordered by meaning; other names
/// keep the order the publisher listed them in, taken as lowest first.
pub fn ranked(mut rids: Vec<Rid>) -> Vec<Rid> {
    for order in [["q", "h", "f"], ["l", "m", "h"]] {
        if rids.iter().all(|rid| order.contains(&&**rid)) {
            rids.sort_by_key(|rid| order.iter().position(|name| **name == **rid));
            break;
        }
    }
    rids
}

/// The layer of `ranked` (lowest first) a subscriber at `quality` gets.
pub fn pick(ranked: &[Rid], quality: Quality) -> Option<Rid> {
    let last = ranked.len().checked_sub(1)?;
    let at = match quality {
        Quality::Low => 0,
        Quality::Medium => last / 2 + last % 2,
        Quality::High => last,
    };
    ranked.get(at).copied()
}

/// The layer each quality gets of one track, with that layer's measured bitrate, worked
/// out once per frame (not once per subscriber).
#[derive(Debug, Clone, Copy, Default)]
pub struct Picks([Option<(Rid, f64)>; 3]);

impl Picks {
    /// `ranked` layers (lowest first) with their bitrates (`rates`, in the same order).
    pub fn of(ranked: &[Rid], rates: &[Rate]) -> Picks {
        Picks([Quality::Low, Quality::Medium, Quality::High].map(|q| {
            let rid = pick(ranked, q)?;
            let at = ranked.iter().position(|r| *r == rid)?;
            Some((rid, rates.get(at).map_or(0.0, Rate::bps)))
        }))
    }

    pub fn get(&self, quality: Quality) -> Option<Rid> {
        // Indexed in the order `of` fills it, which is `Quality`'s declaration order.
        self.0[quality as usize].map(|(rid, _)| rid)
    }

    /// The best layer up to `asked` whose bitrate fits `budget` (bits per second; `None`:
    /// not estimated yet, anything fits); the lowest when none does.
    pub fn fitting(&self, asked: Quality, budget: Option<f64>) -> Option<Rid> {
        let Some(budget) = budget else {
            return self.get(asked);
        };
        [Quality::High, Quality::Medium, Quality::Low]
            .into_iter()
            .filter(|q| *q <= asked)
            .find_map(|q| {
                let (rid, bps) = self.0[q as usize]?;
                (bps <= budget * HEADROOM).then_some(rid)
            })
            .or_else(|| self.get(Quality::Low))
    }
}

/// The share of a subscriber's estimated bandwidth its video may fill.
const HEADROOM: f64 = 0.85;

/// A layer's bitrate, measured over one-second windows.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    since: Instant,
    bytes: u64,
    bps: f64,
}

impl Rate {
    pub fn new(now: Instant) -> Rate {
        Rate {
            since: now,
            bytes: 0,
            bps: 0.0,
        }
    }

    /// Counts a frame of `bytes` arriving at `now`.
    pub fn add(&mut self, bytes: usize, now: Instant) {
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed >= Duration::from_secs(1) {
            self.bps = self.bytes as f64 * 8.0 / elapsed.as_secs_f64();
            self.since = now;
            self.bytes = 0;
        }
        self.bytes += bytes as u64;
    }

    /// Bits per second over the last full window (0 before one has passed).
    pub fn bps(&self) -> f64 {
        self.bps
    }
}

/// Where one subscriber's copy of a layered track stands.
#[derive(Debug, Default)]
pub struct LayerState {
    /// The layer forwarded now, once one has started.
    pub current: Option<Rid>,
    /// Added to a frame's time (in its clock's ticks) to continue the subscriber's times.
    shift: i128,
    last_out: Option<MediaTime>,
    /// When a keyframe of the wanted layer was last asked for.
    pub asked: Option<Instant>,
}

impl LayerState {
    /// Starts forwarding `rid`, whose next frame is at `time`: it follows the last frame
    /// sent by one frame's time (1/30 s), whatever layer that was.
    pub fn switch(&mut self, rid: Rid, time: MediaTime) {
        if let Some(last) = self.last_out {
            let step = i128::from(time.denom() / 30);
            self.shift = i128::from(last.numer()) + step - i128::from(time.numer());
        }
        self.current = Some(rid);
        self.asked = None;
    }

    /// The time a frame of the current layer is sent with.
    pub fn out_time(&mut self, time: MediaTime) -> MediaTime {
        let shifted = (i128::from(time.numer()) + self.shift).max(0);
        let out = MediaTime::new(u64::try_from(shifted).unwrap_or(u64::MAX), time.frequency());
        self.last_out = Some(out);
        out
    }

    /// Whether to ask for a keyframe of the wanted layer now (and note that it was).
    pub fn ask_keyframe(&mut self, now: Instant) -> bool {
        if self
            .asked
            .is_some_and(|at| now.duration_since(at) < KEYFRAME_EVERY)
        {
            return false;
        }
        self.asked = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use str0m::media::Frequency;

    use super::*;

    fn rids(names: &[&str]) -> Vec<Rid> {
        names.iter().map(|name| Rid::from(*name)).collect()
    }

    #[test]
    fn layers_are_ordered_by_convention_and_picked_by_quality() {
        assert_eq!(ranked(rids(&["f", "q", "h"])), rids(&["q", "h", "f"]));
        assert_eq!(ranked(rids(&["h", "l", "m"])), rids(&["l", "m", "h"]));
        assert_eq!(ranked(rids(&["a", "b"])), rids(&["a", "b"]));
        let three = rids(&["l", "m", "h"]);
        assert_eq!(pick(&three, Quality::Low), Some(Rid::from("l")));
        assert_eq!(pick(&three, Quality::Medium), Some(Rid::from("m")));
        assert_eq!(pick(&three, Quality::High), Some(Rid::from("h")));
        assert_eq!(
            pick(&rids(&["a", "b"]), Quality::Medium),
            Some(Rid::from("b"))
        );
        assert_eq!(pick(&[], Quality::High), None);
    }

    #[test]
    fn times_continue_across_a_switch() {
        let at = |ticks| MediaTime::new(ticks, Frequency::NINETY_KHZ);
        let mut state = LayerState::default();
        state.switch(Rid::from("h"), at(1_000_000));
        assert_eq!(state.out_time(at(1_000_000)), at(1_000_000));
        assert_eq!(state.out_time(at(1_003_000)), at(1_003_000));
        // The low layer's clock started elsewhere: its frames follow on.
        state.switch(Rid::from("l"), at(50));
        assert_eq!(state.out_time(at(50)), at(1_006_000));
        assert_eq!(state.out_time(at(3_050)), at(1_009_000));
    }
}
