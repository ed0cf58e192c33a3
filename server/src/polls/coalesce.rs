//! Turns a burst of "this poll changed" into a few updates: at most one per `interval` per
//! poll. The first change goes out at once; later ones within the interval are merged into
//! a single update at its end, so the last state always goes out and 1,000 votes in two
//! seconds cost each member a handful of tally updates, not a thousand.

use std::{collections::HashMap, hash::Hash, time::Duration};

use tokio::{sync::mpsc, time::Instant};

/// Marks keys as changed; the coalescing task sends each key to its output at most once
/// per interval. Cheap to clone. The task ends when every clone is dropped.
#[derive(Clone)]
pub struct Coalescer<K> {
    marks: mpsc::UnboundedSender<K>,
}

impl<K> Coalescer<K>
where
    K: Eq + Hash + Clone + Send + 'static,
{
    /// Starts the task; what it sends comes out of the returned receiver.
    pub fn start(interval: Duration) -> (Self, mpsc::UnboundedReceiver<K>) {
        let (marks, incoming) = mpsc::unbounded_channel();
        let (out, updates) = mpsc::unbounded_channel();
        tokio::spawn(run(interval, incoming, out));
        (Self { marks }, updates)
    }

    /// `key` changed.
    pub fn mark(&self, key: K) {
        // A closed task means the server is shutting down: nothing left to update.
        let _ = self.marks.send(key);
    }

    /// A handle that marks keys without keeping the task alive (for whatever reads the
    /// task's output: holding a `Coalescer` there would keep both running forever).
    pub fn downgrade(&self) -> WeakCoalescer<K> {
        WeakCoalescer {
            marks: self.marks.downgrade(),
        }
    }
}

/// A [`Coalescer`] that does not keep its task alive.
#[derive(Clone)]
pub struct WeakCoalescer<K> {
    marks: mpsc::WeakUnboundedSender<K>,
}

impl<K> WeakCoalescer<K> {
    /// `key` changed (nothing happens once every `Coalescer` is gone).
    pub fn mark(&self, key: K) {
        if let Some(marks) = self.marks.upgrade() {
            let _ = marks.send(key);
        }
    }
}

struct Slot {
    last_sent: Instant,
    pending: bool,
}

async fn run<K: Eq + Hash + Clone>(
    interval: Duration,
    mut incoming: mpsc::UnboundedReceiver<K>,
    out: mpsc::UnboundedSender<K>,
) {
    let mut slots: HashMap<K, Slot> = HashMap::new();
    // Checks for merged updates that came due; a quarter interval keeps them close to it.
    let mut tick = tokio::time::interval(interval / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            mark = incoming.recv() => {
                let Some(key) = mark else { break };
                let now = Instant::now();
                match slots.get_mut(&key) {
                    Some(slot) if now < slot.last_sent + interval => slot.pending = true,
                    _ => {
                        slots.insert(key.clone(), Slot { last_sent: now, pending: false });
                        if out.send(key).is_err() {
                            return;
                        }
                    }
                }
            }
            // Only while something is kept: an idle server is not woken 16 times a second.
            _ = tick.tick(), if !slots.is_empty() => {
                let now = Instant::now();
                for (key, slot) in slots.iter_mut() {
                    if slot.pending && now >= slot.last_sent + interval {
                        slot.pending = false;
                        slot.last_sent = now;
                        if out.send(key.clone()).is_err() {
                            return;
                        }
                    }
                }
                // Forget quiet keys, so the map holds only what changed recently.
                slots.retain(|_, slot| slot.pending || now < slot.last_sent + interval * 4);
            }
        }
    }
    // The marks are done: flush what is still pending.
    for (key, slot) in slots {
        if slot.pending {
            let _ = out.send(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn drain(updates: &mut mpsc::UnboundedReceiver<u32>) -> Vec<u32> {
        let mut got = Vec::new();
        while let Ok(key) = updates.try_recv() {
            got.push(key);
        }
        got
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_becomes_a_few_updates_and_the_last_state_goes_out() {
        let interval = Duration::from_millis(250);
        let (coalescer, mut updates) = Coalescer::start(interval);
        // 1,000 changes of poll 1 over 2 s.
        for _ in 0..1000 {
            coalescer.mark(1u32);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let during = drain(&mut updates).await;
        // The last changes came after the last update: one more carries them.
        tokio::time::sleep(interval * 2).await;
        let after = drain(&mut updates).await;
        assert_eq!(after, [1], "the final state goes out once the burst ends");
        assert!(during.iter().all(|k| *k == 1));
        // About one per interval over 2 s (the first at once).
        assert!(
            (8..=10).contains(&during.len()),
            "{} updates for 1,000 changes",
            during.len()
        );
        // Quiet now: nothing more.
        tokio::time::sleep(interval * 4).await;
        assert!(drain(&mut updates).await.is_empty());
        // And a change after the quiet goes out at once, and a second one at the interval.
        coalescer.mark(1);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(drain(&mut updates).await, [1]);
        coalescer.mark(1);
        tokio::time::sleep(interval).await;
        assert_eq!(drain(&mut updates).await, [1]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_change_goes_out_at_once_and_keys_are_independent() {
        let (coalescer, mut updates) = Coalescer::start(Duration::from_millis(250));
        coalescer.mark(1u32);
        coalescer.mark(2u32);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(drain(&mut updates).await, [1, 2]);
        coalescer.mark(1);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            drain(&mut updates).await.is_empty(),
            "merged until the interval ends"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(drain(&mut updates).await, [1]);
    }
}
