//! The contract of `RateLimiter`, checked at the trait: governor in memory always, the
//! Redis sliding log on the services pass.

use std::{sync::Arc, time::Duration};

use secureconnect_server::{
    bus::RedisHandles,
    error::Error,
    ratelimit::{Limit, LocalRateLimiter, RateLimiter, RedisRateLimiter},
};

async fn rate_limiter_suite(limiter: Arc<dyn RateLimiter>) {
    let limit = Limit {
        name: "suite",
        max: 5,
        window: Duration::from_millis(400),
    };
    for i in 0..5 {
        limiter
            .check(limit, "ann")
            .await
            .unwrap_or_else(|e| panic!("call {i} is within the limit: {e:?}"));
    }
    match limiter.check(limit, "ann").await {
        Err(Error::RateLimited { retry_after }) => assert!(
            retry_after > Duration::ZERO && retry_after <= limit.window,
            "a usable retry delay: {retry_after:?}"
        ),
        other => panic!("the sixth call is refused, got {other:?}"),
    }
    limiter
        .check(limit, "bob")
        .await
        .expect("other subjects have their own allowance");
    let other_limit = Limit {
        name: "suite-other",
        ..limit
    };
    limiter
        .check(other_limit, "ann")
        .await
        .expect("other limits are counted apart");
    tokio::time::sleep(limit.window + Duration::from_millis(100)).await;
    limiter
        .check(limit, "ann")
        .await
        .expect("allowed again once the window has passed");
}

#[tokio::test]
async fn in_memory_rate_limiter_keeps_the_contract() {
    rate_limiter_suite(Arc::new(LocalRateLimiter::default())).await;
}

#[tokio::test]
#[ignore = "needs Redis (SC_TEST_REDIS_URL); run by deploy/local/test.sh"]
async fn redis_rate_limiter_keeps_the_contract() {
    let url = std::env::var("SC_TEST_REDIS_URL").unwrap_or_default();
    assert!(
        !url.is_empty(),
        "SC_TEST_REDIS_URL must be set for this test"
    );
    let prefix = format!("l{}", uuid::Uuid::new_v4().simple());
    let redis = RedisHandles::new(&url, &prefix).expect("redis");
    rate_limiter_suite(Arc::new(RedisRateLimiter::new(redis.pool, &prefix))).await;
}
