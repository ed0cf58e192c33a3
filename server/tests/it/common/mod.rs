//! Test harness: a real server on 127.0.0.1:0 with its own data directory, driven
//! through the Rust SDK the way users drive it.
#![allow(dead_code)] // each test binary uses a different subset of the helpers

use std::time::Duration;

use secureconnect_sdk::{
    Client,
    proto::{
        auth::v1::{RegisterRequest, TokenPair},
        conversation::v1::{
            Conversation, ConversationSettings, ConversationType, CreateConversationRequest,
        },
        event::v1::{
            ConversationEvent, SubscribeRequest, SubscribeResponse, conversation_event,
            subscribe_response::Event,
        },
        message::v1::{
            ListMessagesRequest, Message, MessageContent, SendMessageRequest, message_content::Body,
        },
    },
};
use secureconnect_server::{
    app::{self, Running},
    config::Config,
};
use tonic::{Code, Status, Streaming};

pub struct TestServer {
    running: Option<Running>,
    /// What it was started with (for [`TestServer::restart`]).
    config: Config,
    pub endpoint: String,
    /// The PostgreSQL database URL, when running on PostgreSQL (else empty).
    pub database_url: String,
    _dir: tempfile::TempDir,
}

pub struct TestUser {
    pub client: Client,
    pub id: String,
    pub email: String,
    pub password: String,
    pub tokens: TokenPair,
}

/// A group conversation and its people, as [`TestServer::group`] sets them up.
pub struct Group {
    /// "alice", who created the group and owns it.
    pub owner: TestUser,
    /// The other members, in the order of [`CAST`] after alice ("bob", "carol", ...).
    pub members: Vec<TestUser>,
    /// The group as its creation returned it, titled [`Group::TITLE`].
    pub conversation: Conversation,
}

impl Group {
    pub const TITLE: &str = "group";

    /// The owner, the `N` members and the conversation as owned values, for tests that name
    /// each person: `let (alice, [bob, carol], group) = server.group(3).await.into_parts();`.
    pub fn into_parts<const N: usize>(self) -> (TestUser, [TestUser; N], Conversation) {
        let count = self.members.len();
        let Ok(members) = self.members.try_into() else {
            panic!("the group has {count} members besides its owner, not {N}");
        };
        (self.owner, members, self.conversation)
    }
}

/// The names fixtures give users, in order: tests read better with people than with
/// `user3`, and a failing assertion names someone a reader can find in the test.
pub const CAST: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server on the embedded default, or, when `SC_TEST_POSTGRES_URL`
    /// names a PostgreSQL server (as `deploy/local/test.sh` sets for its second pass), on a
    /// fresh database of its own there.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let database = fresh_database().await;
        config.database.url = (!database.is_empty()).then(|| database.into());
        config.redis.url = std::env::var("SC_TEST_REDIS_URL")
            .ok()
            .filter(|url| !url.is_empty())
            .map(Into::into);
        config.cql = cql_config();
        config.blobs = blobs_config();
        // Test servers share the suite's Redis but are separate deployments: their events
        // and rate counters must not meet. (Cluster tests give their nodes one prefix.)
        config.redis.key_prefix = format!("t{}", uuid::Uuid::new_v4().simple());
        // Tests send in bursts; the rate-limit tests set their own, low limit.
        config.limits.messages_per_second = 1_000_000;
        // Groups of three or more are fanned out on read, direct conversations on write:
        // every suite exercises both (the production default is far larger).
        config.database.fanout_on_read_members = 2;
        adjust(&mut config);
        let database_url = config
            .database
            .url
            .as_ref()
            .map(|url| url.expose().to_owned())
            .unwrap_or_default();
        let running = app::start(config.clone()).await.expect("server starts");
        let endpoint = format!("http://{}", running.addr);
        config.listen = running.addr;
        Self {
            running: Some(running),
            config,
            endpoint,
            database_url,
            _dir: dir,
        }
    }

    /// A second connection to this server's database (SQLite or PostgreSQL), for tests
    /// that reach under the API — such as running retention at a chosen moment.
    pub async fn open_store(&self) -> std::sync::Arc<secureconnect_server::store::sql::SqlStore> {
        let url = if self.database_url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self._dir.path().join("secureconnect.db").display()
            )
        } else {
            self.database_url.clone()
        };
        let history = if cql_config().contact_points.is_none() {
            None
        } else {
            Some(
                secureconnect_server::store::cql::CqlHistory::connect(&cql_config())
                    .await
                    .expect("cql"),
            )
        };
        secureconnect_server::store::sql::SqlStore::connect(
            &url,
            &secureconnect_server::config::DatabaseConfig::default(),
            history,
        )
        .await
        .expect("second connection to the server's database")
    }

    /// Stops at once, like a crash (see `Running::abort`).
    pub fn crash(mut self) {
        self.crash_in_place();
    }

    /// Crashes (see [`TestServer::crash`]) and starts again on the same address, data and
    /// database: what a node killed by the OOM killer and restarted by its supervisor does.
    pub async fn crash_and_restart(&mut self) {
        self.crash_in_place();
        let running = app::start(self.config.clone())
            .await
            .expect("server restarts");
        self.running = Some(running);
    }

    fn crash_in_place(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
        }
    }

    /// What the server was started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().expect("running").addr
    }

    /// A plain connection to the server, for raw gRPC calls and clients outside the SDK.
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.endpoint.clone())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.endpoint.clone())
            .await
            .expect("connect")
    }

    /// Registers `name` (also the username) and returns a signed-in client.
    pub async fn register(&self, name: &str) -> TestUser {
        self.register_on(name, self.client().await).await
    }

    /// Two registered users, alice and bob: the cast of every two-party test.
    pub async fn pair(&self) -> (TestUser, TestUser) {
        let alice = self.register("alice").await;
        let bob = self.register("bob").await;
        (alice, bob)
    }

    /// A group of `n` (at least 1): alice, who creates and owns it, and `n - 1` members
    /// named after her in [`CAST`] order (then `member9`, `member10`, ...).
    pub async fn group(&self, n: usize) -> Group {
        assert!(n >= 1, "a group has at least its owner");
        let mut people = Vec::with_capacity(n);
        for i in 0..n {
            let name = CAST
                .get(i)
                .map_or_else(|| format!("member{}", i + 1), |name| (*name).to_owned());
            people.push(self.register(&name).await);
        }
        let members = people.split_off(1);
        let owner = people.pop().expect("the owner");
        let conversation = owner
            .group_with(Group::TITLE, &members.iter().collect::<Vec<_>>())
            .await;
        Group {
            owner,
            members,
            conversation,
        }
    }

    /// A client whose HTTP/2 flow-control windows are tiny, like a phone on a bad link:
    /// the server can only push a few KiB ahead of what the app has read.
    pub async fn slow_client(&self) -> Client {
        let channel = tonic::transport::Endpoint::from_shared(self.endpoint.clone())
            .expect("endpoint")
            .initial_stream_window_size(Some(16 * 1024))
            .initial_connection_window_size(Some(16 * 1024))
            .connect()
            .await
            .expect("connect");
        Client::from_channel(channel)
    }

    /// Shuts down cleanly (streams get `closing`) and starts again on the same address,
    /// data and database, as a deployment restarting the server process would.
    pub async fn restart(&mut self) {
        self.restart_after(Duration::ZERO).await;
    }

    /// [`TestServer::restart`], staying down for `pause` first.
    pub async fn restart_after(&mut self, pause: Duration) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.expect("clean shutdown");
        }
        tokio::time::sleep(pause).await;
        let running = app::start(self.config.clone())
            .await
            .expect("server restarts");
        self.running = Some(running);
    }

    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.expect("clean shutdown");
        }
    }

    /// Registers `name` using `client`.
    pub async fn register_on(&self, name: &str, client: Client) -> TestUser {
        TestServerAt::new(&self.endpoint)
            .register_on(name, client)
            .await
    }
}

/// A server this test did not start in-process (e.g. a separate `secureconnect` process).
pub struct TestServerAt {
    pub endpoint: String,
}

impl TestServerAt {
    pub fn new(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
        }
    }

    pub async fn register(&self, name: &str) -> TestUser {
        let client = Client::connect(self.endpoint.clone())
            .await
            .expect("connect");
        self.register_on(name, client).await
    }

    pub async fn register_on(&self, name: &str, client: Client) -> TestUser {
        let email = format!("{name}@example.com");
        let password = format!("{name}-correct-horse");
        let response = client
            .auth()
            .register(RegisterRequest {
                email: email.clone(),
                password: password.clone(),
                username: name.to_owned(),
                display_name: format!("{name} display"),
                device: None,
            })
            .await
            .expect("register")
            .into_inner();
        let tokens = response.tokens.expect("tokens");
        client.set_access_token(Some(tokens.access_token.clone()));
        TestUser {
            client,
            id: response.user_id,
            email,
            password,
            tokens,
        }
    }
}

/// Message history in Cassandra when the suite runs with `SC_TEST_CQL_CONTACT_POINT`
/// (the services pass); else off. All test servers share one keyspace: every row is keyed
/// by a random conversation id, so they cannot meet.
pub fn cql_config() -> secureconnect_server::config::CqlConfig {
    secureconnect_server::config::CqlConfig {
        contact_points: std::env::var("SC_TEST_CQL_CONTACT_POINT")
            .ok()
            .filter(|points| !points.is_empty()),
        keyspace: "sc_test".into(),
        replication_factor: 1,
        ..Default::default()
    }
}

/// File contents in the suite's S3 server (SeaweedFS) when it runs with `SC_TEST_S3_*` (the
/// services pass); else in local files. Test servers share the bucket: every key holds a
/// random id, so they cannot meet.
pub fn blobs_config() -> secureconnect_server::config::BlobsConfig {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match var("SC_TEST_S3_ENDPOINT") {
        None => Default::default(),
        Some(endpoint) => secureconnect_server::config::BlobsConfig {
            s3_endpoint: Some(endpoint),
            s3_bucket: var("SC_TEST_S3_BUCKET"),
            s3_access_key_id: var("SC_TEST_S3_ACCESS_KEY_ID").unwrap_or_default(),
            s3_secret_access_key: var("SC_TEST_S3_SECRET_ACCESS_KEY")
                .unwrap_or_default()
                .into(),
            ..Default::default()
        },
    }
}

/// A new, empty PostgreSQL database when the suite runs against PostgreSQL; else empty
/// (the embedded SQLite default).
pub async fn fresh_database() -> String {
    use sea_orm::ConnectionTrait;
    let admin_url = std::env::var("SC_TEST_POSTGRES_URL").unwrap_or_default();
    if admin_url.is_empty() {
        return String::new();
    }
    let name = format!("sc_test_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(admin_url.clone())
        .await
        .expect("connect to the test PostgreSQL");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    admin.close().await.expect("close admin connection");
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("database URL ends with /<database>");
    format!("{base}/{name}")
}

impl TestUser {
    pub async fn direct_with(&self, other: &TestUser) -> Conversation {
        self.client
            .conversations()
            .create_conversation(CreateConversationRequest {
                r#type: ConversationType::Direct.into(),
                member_user_ids: vec![other.id.clone()],
                ..Default::default()
            })
            .await
            .expect("create direct")
            .into_inner()
            .conversation
            .expect("conversation")
    }

    pub async fn group_with(&self, title: &str, members: &[&TestUser]) -> Conversation {
        self.create_group(title, members, false).await
    }

    pub async fn create_group(
        &self,
        title: &str,
        members: &[&TestUser],
        e2ee: bool,
    ) -> Conversation {
        self.client
            .conversations()
            .create_conversation(CreateConversationRequest {
                r#type: ConversationType::Group.into(),
                member_user_ids: members.iter().map(|m| m.id.clone()).collect(),
                title: title.to_owned(),
                settings: Some(ConversationSettings {
                    end_to_end_encrypted: e2ee,
                }),
                ..Default::default()
            })
            .await
            .expect("create group")
            .into_inner()
            .conversation
            .expect("conversation")
    }

    pub async fn send(&self, conversation_id: &str, text: &str) -> Message {
        self.try_send(conversation_id, text, &uuid::Uuid::new_v4().to_string())
            .await
            .expect("send")
    }

    pub async fn try_send(
        &self,
        conversation_id: &str,
        text: &str,
        request_id: &str,
    ) -> Result<Message, Status> {
        Ok(self
            .client
            .messages()
            .send_message(SendMessageRequest {
                conversation_id: conversation_id.to_owned(),
                content: Some(text_content(text)),
                request_id: request_id.to_owned(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .message
            .expect("message"))
    }

    /// The newest messages of a conversation (up to 50), newest first.
    pub async fn list_messages(&self, conversation_id: &str) -> Vec<Message> {
        self.client
            .messages()
            .list_messages(ListMessagesRequest {
                conversation_id: conversation_id.to_owned(),
                ..Default::default()
            })
            .await
            .expect("list messages")
            .into_inner()
            .messages
    }

    pub async fn subscribe(&self, cursor: &str) -> Streaming<SubscribeResponse> {
        self.try_subscribe(cursor).await.expect("subscribe")
    }

    pub async fn try_subscribe(
        &self,
        cursor: &str,
    ) -> Result<Streaming<SubscribeResponse>, Status> {
        Ok(self
            .client
            .events()
            .subscribe(SubscribeRequest {
                cursor: cursor.to_owned(),
            })
            .await?
            .into_inner())
    }
}

pub fn text_content(text: &str) -> MessageContent {
    MessageContent {
        body: Some(Body::Text(text.to_owned())),
    }
}

pub fn text_of(message: &Message) -> Option<&str> {
    match message.content.as_ref()?.body.as_ref()? {
        Body::Text(text) => Some(text),
        Body::EncryptedPayload(_) | Body::Poll(_) | Body::Call(_) => None,
    }
}

/// The next item on the stream, failing the test after 10 s.
pub async fn next(stream: &mut Streaming<SubscribeResponse>) -> SubscribeResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("stream item within 10 s")
        .expect("stream ok")
        .expect("stream not ended")
}

/// The next conversation event, skipping heartbeats, `caught_up`, user events, poll
/// tallies (which trail votes by up to a coalescing interval, so may arrive at any point)
/// and call updates.
pub async fn next_conversation_event(
    stream: &mut Streaming<SubscribeResponse>,
) -> (String, ConversationEvent) {
    loop {
        let item = next(stream).await;
        match item.event {
            Some(Event::ConversationEvent(event)) => return (item.cursor, event),
            Some(Event::Heartbeat(_))
            | Some(Event::CaughtUp(_))
            | Some(Event::UserEvent(_))
            | Some(Event::PollTally(_))
            | Some(Event::CallUpdated(_)) => {}
            other => panic!("unexpected stream item {other:?}"),
        }
    }
}

/// A resume whose start was trimmed away: a `gap` first, then `count` messages (their
/// texts are returned), then `caught_up`.
pub async fn gap_then_messages(
    stream: &mut Streaming<SubscribeResponse>,
    count: usize,
) -> Vec<String> {
    let first = next(stream).await;
    assert!(
        matches!(first.event, Some(Event::Gap(_))),
        "the trimmed part is announced: {first:?}"
    );
    let mut texts = Vec::new();
    for _ in 0..count {
        let (_, event) = next_conversation_event(stream).await;
        let Some(conversation_event::Change::MessageSent(message)) = event.change else {
            panic!("{event:?}")
        };
        texts.push(text_of(&message).unwrap_or_default().to_owned());
    }
    let caught_up = next(stream).await;
    assert!(
        matches!(caught_up.event, Some(Event::CaughtUp(_))),
        "and caught_up once replayed: {caught_up:?}"
    );
    texts
}

/// Reads until `caught_up` and returns its cursor.
pub async fn until_caught_up(stream: &mut Streaming<SubscribeResponse>) -> String {
    loop {
        let item = next(stream).await;
        if let Some(Event::CaughtUp(_)) = item.event {
            return item.cursor;
        }
    }
}

pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(status.code(), code, "unexpected status: {status:?}");
            status
        }
    }
}

/// The field names of a status's `BadRequest` violations.
pub fn violated_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// The reason of a status as the SDK decodes it (`ERROR_REASON_` prefix dropped, the way
/// the server spells it), or empty when it has none: every reason a test checks goes
/// through the decoder apps use.
pub fn reason(status: &Status) -> String {
    secureconnect_sdk::error_reason(status)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("ERROR_REASON_")
                .to_owned()
        })
        .unwrap_or_default()
}

/// Sleeps until just after the next wall-clock second begins, so a short burst of calls
/// falls inside one window of a per-second rate limit (Redis counts per Unix second).
pub async fn start_of_next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    let into_second = Duration::from_nanos(u64::from(now.subsec_nanos()));
    tokio::time::sleep(Duration::from_millis(1050) - into_second).await;
}
