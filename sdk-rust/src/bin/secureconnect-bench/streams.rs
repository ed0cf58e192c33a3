//! Opening many streams at once, each on its own connection, and waiting until every one
//! is live before measuring.

use futures::{StreamExt, stream};
use tokio::sync::mpsc;

use crate::secureconnect::BoxError;

/// Tells the benchmark, once, that a stream is live.
pub struct Live(Option<mpsc::Sender<()>>);

impl Live {
    /// Reports the stream live (again: no-op).
    pub async fn report(&mut self) {
        if let Some(ready) = self.0.take() {
            let _ = ready.send(()).await;
        }
    }
}

/// Opens a stream for each of `items`, `at_once` at a time: `open` opens one and hands its
/// [`Live`] to whatever reads it. Returns once every stream has reported live.
pub async fn open_all<T, F, Fut>(items: Vec<T>, at_once: usize, mut open: F) -> Result<(), BoxError>
where
    F: FnMut(T, Live) -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    let count = items.len();
    let (ready, mut opened) = mpsc::channel(count.max(1));
    stream::iter(items)
        .map(|item| open(item, Live(Some(ready.clone()))))
        .buffer_unordered(at_once)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
    drop(ready);
    for _ in 0..count {
        opened
            .recv()
            .await
            .ok_or("a stream ended before it was live")?;
    }
    Ok(())
}
