//! `EventService`, as alice.

use secureconnect_sdk::proto::event::v1::SubscribeRequest;

use super::invalid;
use crate::common::*;

#[tokio::test]
async fn subscribe() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let result = alice
        .client
        .events()
        .subscribe(SubscribeRequest {
            cursor: "1:-1".into(),
        })
        .await;
    invalid("subscribe: negative cursor", result.map(|_| ()), "cursor");
    server.shutdown().await;
}
