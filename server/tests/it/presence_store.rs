//! The contract of `PresenceStore`, checked at the trait: in memory always, Redis on the
//! services pass. Presence follows devices: online while any device's stream is alive,
//! offline with a last-seen time once the last one says goodbye or stops refreshing.

use std::{sync::Arc, time::Duration};

use secureconnect_server::{
    bus::RedisHandles,
    presence::{LocalPresence, PresenceStore, RedisPresence},
};
use uuid::Uuid;

async fn presence_store_suite(store: Arc<dyn PresenceStore>) {
    let (user, phone, laptop) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let long = Duration::from_secs(60);
    let never_seen = store.presence(&[user]).await.expect("presence");
    assert_eq!(never_seen.len(), 1);
    assert!(!never_seen[0].online && never_seen[0].last_seen.is_none());

    store.connected(user, phone, long).await.expect("phone");
    store.connected(user, laptop, long).await.expect("laptop");
    assert!(store.presence(&[user]).await.expect("presence")[0].online);

    store.disconnected(user, phone).await.expect("phone leaves");
    let one_left = store.presence(&[user]).await.expect("presence");
    assert!(one_left[0].online, "the laptop is still there");
    assert!(one_left[0].last_seen.is_none(), "no last-seen while online");

    store
        .disconnected(user, laptop)
        .await
        .expect("laptop leaves");
    let gone = store.presence(&[user]).await.expect("presence");
    assert!(!gone[0].online);
    let seen = gone[0].last_seen.expect("last seen is recorded");
    assert!((chrono::Utc::now() - seen).num_seconds() < 5);

    // A device whose node died never says goodbye: it lapses after its ttl.
    let (other, tablet) = (Uuid::new_v4(), Uuid::new_v4());
    store
        .connected(other, tablet, Duration::from_millis(300))
        .await
        .expect("tablet");
    assert!(store.presence(&[other]).await.expect("presence")[0].online);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let lapsed = store.presence(&[other]).await.expect("presence");
    assert!(!lapsed[0].online, "lapsed without a refresh");
    assert!(lapsed[0].last_seen.is_some(), "seen until it lapsed");

    // Several users at once, answered in order.
    let both = store.presence(&[other, user]).await.expect("presence");
    assert_eq!(
        both.iter().map(|p| p.user_id).collect::<Vec<_>>(),
        vec![other, user]
    );
}

#[tokio::test]
async fn in_memory_presence_keeps_the_contract() {
    presence_store_suite(Arc::new(LocalPresence::default())).await;
}

#[tokio::test]
#[ignore = "needs Redis (SC_TEST_REDIS_URL); run by deploy/local/test.sh"]
async fn redis_presence_keeps_the_contract() {
    let url = std::env::var("SC_TEST_REDIS_URL").unwrap_or_default();
    assert!(
        !url.is_empty(),
        "SC_TEST_REDIS_URL must be set for this test"
    );
    let prefix = format!("p{}", Uuid::new_v4().simple());
    let redis = RedisHandles::new(&url, &prefix).expect("redis");
    presence_store_suite(Arc::new(RedisPresence::new(redis.pool, &prefix))).await;
}
