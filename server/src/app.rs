//! Start-up and teardown, top to bottom: storage → keys → bus → domain services →
//! background tasks → gRPC server (with gRPC-web, CORS, health and reflection) →
//! graceful shutdown → background tasks stopped in a fixed order. Each stage is logged.

mod background;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use secureconnect_proto::{
    auth::v1::auth_service_server::AuthServiceServer,
    call::v1::call_service_server::CallServiceServer,
    conversation::v1::conversation_service_server::ConversationServiceServer,
    drive::v1::drive_service_server::DriveServiceServer,
    message::v1::message_service_server::MessageServiceServer,
    poll::v1::poll_service_server::PollServiceServer,
    presence::v1::presence_service_server::PresenceServiceServer,
    user::v1::user_service_server::UserServiceServer,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic_health::{ServingStatus, server::HealthReporter};

use self::background::Background;
use crate::{
    api::{
        auth::AuthApi,
        call::CallApi,
        conversation::ConversationApi,
        drive::DriveApi,
        event::{EventApi, EventServer},
        message::MessageApi,
        poll::PollApi,
        presence::PresenceApi,
        user::UserApi,
    },
    auth::{Auth, AuthParts, TokenAuthority},
    bus::{EventBus, LocalBus, RedisBus, RedisHandles},
    calls::{
        Calls, CallsParts,
        placement::{LocalPlacement, Placement, RedisPlacement},
    },
    chat::Chat,
    config::Config,
    drive::Drive,
    error::{Error, Result},
    events::Events,
    layers,
    mail::{self, Mailer},
    polls::Polls,
    presence::{LocalPresence, Presence, PresenceStore, RedisPresence},
    ratelimit::{LocalRateLimiter, RateLimiter, RedisRateLimiter},
    request_limits::RequestLimitsLayer,
    sfu::{Sfu, SfuConfig},
    store::{
        CallStore, ChatStore, ContactStore, DriveStore, PollStore, SessionStore, UserStore,
        cql::CqlHistory, sql::SqlStore,
    },
    users::Users,
};

/// How many events the in-process bus holds for streams that fall behind.
const BUS_CAPACITY: usize = 4096;

/// How often each node looks for polls whose close time came.
const POLL_CLOSE_PERIOD: Duration = Duration::from_secs(1);

/// How often each node looks for calls whose ring timed out.
const CALL_SWEEP_PERIOD: Duration = Duration::from_secs(1);

/// How often each node looks for expired uploads.
const UPLOAD_EXPIRY_PERIOD: Duration = Duration::from_secs(60);

/// A server that is accepting connections.
pub struct Running {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    /// Stopped once the server has drained.
    background: Background,
}

impl Running {
    /// Asks open streams to reconnect elsewhere, stops accepting, waits for connections
    /// to drain, then stops the background tasks.
    pub async fn shutdown(self) -> Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the server stops (after [`Running::shutdown`], a cancelled
    /// [`Running::shutdown_token`] or a fatal error), then stops the background tasks.
    pub async fn wait(self) -> Result<()> {
        self.finish(None).await
    }

    /// Like [`Running::wait`], but once shutdown has begun, waits at most `drain` for
    /// connections to close; past it, the server is dropped with them still open.
    pub async fn wait_draining(self, drain: Duration) -> Result<()> {
        self.finish(Some(drain)).await
    }

    async fn finish(mut self, drain: Option<Duration>) -> Result<()> {
        let served = tokio::select! {
            biased;
            served = &mut self.task => Some(served),
            () = self.shutdown.cancelled() => None,
        };
        let served = match (served, drain) {
            (Some(served), _) => served,
            (None, None) => (&mut self.task).await,
            (None, Some(drain)) => match tokio::time::timeout(drain, &mut self.task).await {
                Ok(served) => served,
                Err(_) => {
                    tracing::warn!(
                        ?drain,
                        "connections still open after the drain deadline; closing them"
                    );
                    self.task.abort();
                    Ok(Ok(()))
                }
            },
        };
        tracing::info!("gRPC server stopped; stopping background tasks");
        self.background.stop().await;
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(Error::internal(format!("server failed: {err}"))),
            Err(err) => Err(Error::internal(format!("server task failed: {err}"))),
        }
    }

    /// Stops at once, like a crash: connections drop with no `closing` event and no drain,
    /// and background tasks end wherever they are.
    /// (For fault tests; committed data is already durable, so nothing is lost.)
    pub fn abort(self) {
        self.task.abort();
        self.shutdown.cancel();
        self.background.abort();
    }

    /// A token that, when cancelled, shuts the server down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Builds everything from `config` and starts serving.
pub async fn start(config: Config) -> Result<Running> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        Error::internal(format!(
            "cannot create data dir {}: {e}",
            config.data_dir.display()
        ))
    })?;

    let history = match &config.cql.contact_points {
        None => None,
        Some(contact_points) => {
            let history = CqlHistory::connect(&config.cql).await?;
            tracing::info!(
                contact_points,
                keyspace = config.cql.keyspace,
                "CQL connected and migrated: message history lives there"
            );
            Some(history)
        }
    };
    let database_url = config.effective_database_url();
    let store = SqlStore::connect(database_url.expose(), &config.database, history).await?;
    // (The URL's Debug masks its password.)
    tracing::info!(database = ?database_url, "database connected and migrated");
    let health_store = store.clone();
    let user_store: Arc<dyn UserStore> = store.clone();
    let session_store: Arc<dyn SessionStore> = store.clone();
    let contact_store: Arc<dyn ContactStore> = store.clone();
    let poll_store: Arc<dyn PollStore> = store.clone();
    let drive_store: Arc<dyn DriveStore> = store.clone();
    let call_store: Arc<dyn CallStore> = store.clone();
    let chat_store: Arc<dyn ChatStore> = store;

    let tokens = Arc::new(TokenAuthority::load_or_create(
        &config.root_key_path(),
        Duration::from_secs(config.auth.access_token_ttl_secs),
    )?);
    tracing::info!(path = %config.root_key_path().display(), "token signing key loaded");
    // Stops accepting calls and tells open streams to reconnect elsewhere.
    let shutdown = CancellationToken::new();
    // Stops the Redis bus tasks, after the server has drained (see `Background`).
    let bus_stop = CancellationToken::new();
    let mut bus_tasks = None;
    // One node: everything in-process. A cluster: Redis carries events, revocations,
    // rate-limit counters and presence between nodes.
    let (bus, limiter, presence_store, placement): Shared = match &config.redis.url {
        None => {
            tracing::info!(
                "no Redis configured: events, rate limits, presence and calls in-process"
            );
            (
                Arc::new(LocalBus::new(BUS_CAPACITY)),
                Arc::new(LocalRateLimiter::default()),
                Arc::new(LocalPresence::default()),
                Arc::new(LocalPlacement),
            )
        }
        Some(url) => {
            let redis = RedisHandles::new(url.expose(), &config.redis.key_prefix)?;
            let (bus, tasks) = RedisBus::start(&redis, BUS_CAPACITY, bus_stop.clone());
            bus_tasks = Some(tasks);
            // Connections are made, and retried, in the background: the bus logs when it
            // has subscribed.
            tracing::info!(redis = ?url, prefix = redis.prefix, "Redis bus started");
            (
                bus,
                Arc::new(RedisRateLimiter::new(redis.pool.clone(), &redis.prefix)),
                Arc::new(RedisPresence::new(redis.pool.clone(), &redis.prefix)),
                Arc::new(RedisPlacement::new(redis.pool.clone(), &redis.prefix)),
            )
        }
    };

    let mailer: Arc<dyn Mailer> = Arc::from(mail::from_config(&config.mail, &config.data_dir)?);
    match &config.mail.smtp_url {
        Some(url) => tracing::info!(smtp = ?url, "mail goes out over SMTP"),
        None => tracing::info!(
            outbox = %config.data_dir.join("outbox").display(),
            "no SMTP configured: mail is written to the outbox"
        ),
    }
    let parts = AuthParts {
        users: user_store.clone(),
        sessions: session_store,
        tokens: tokens.clone(),
        mailer,
        bus: bus.clone(),
        limiter: limiter.clone(),
    };
    let auth = Arc::new(Auth::new(parts, &config.auth, config.mail.public_url.clone()).await?);
    let presence = Arc::new(Presence::new(
        presence_store,
        user_store.clone(),
        chat_store.clone(),
        bus.clone(),
        limiter.clone(),
    ));
    let chat = Arc::new(Chat::new(
        chat_store.clone(),
        user_store.clone(),
        bus.clone(),
        limiter.clone(),
        config.limits.clone(),
    ));
    let polls = Arc::new(Polls::new(
        poll_store,
        chat_store.clone(),
        bus.clone(),
        limiter.clone(),
        config.limits.clone(),
    ));
    // Bound before the services start: a call's carrier is known by this address.
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::internal(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener.local_addr().map_err(Error::internal)?;
    let node_url = config
        .calls
        .node_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let sfu = Sfu::start(SfuConfig {
        bind: config.calls.media_bind,
        public_ip: config.calls.public_ip(),
    })
    .await
    .map_err(|e| {
        Error::internal(format!(
            "cannot open the SFU's media socket {}: {e}",
            config.calls.media_bind
        ))
    })?;
    tracing::info!(media = %sfu.media_addr(), "SFU listening for call media");
    let calls = Arc::new(Calls::new(
        call_store,
        chat_store.clone(),
        user_store.clone(),
        bus.clone(),
        limiter.clone(),
        config.limits.clone(),
        config.calls.clone(),
        CallsParts {
            sfu,
            placement,
            node_url,
        },
    ));
    let blobs = crate::blobs::from_config(&config.blobs, &config.data_dir)?;
    tracing::info!(
        s3_bucket = config.blobs.s3_bucket.as_deref().unwrap_or("(local files)"),
        "blob store ready"
    );
    let drive = Arc::new(Drive::new(
        drive_store,
        blobs,
        limiter,
        config.drive.clone(),
        config.limits.max_request_bytes,
        tokens,
    ));
    let users = Arc::new(Users::new(
        user_store,
        contact_store,
        bus.clone(),
        auth.clone(),
        chat.clone(),
    ));
    let events = Arc::new(Events::new(
        chat_store,
        bus,
        config.stream.clone(),
        auth.revocations(),
        presence.clone(),
        shutdown.clone(),
    ));

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    // Added in the order they are stopped: the periodic jobs, then what reads the bus,
    // then the bus itself (its subscriber first, its publisher last).
    let mut background = Background::default();
    let keep = config.stream.max_replay_events;
    let closing = polls.clone();
    background.start("poll closing", |stop| close_due_polls(closing, stop));
    let sweeping = calls.clone();
    background.start("call sweeping", |stop| sweep_calls(sweeping, stop));
    // Watchers of calls are told to go elsewhere as soon as the node starts shutting
    // down (their streams would otherwise hold the drain open).
    let (leaving, going) = (calls.clone(), shutdown.clone());
    tokio::spawn(async move {
        going.cancelled().await;
        leaving.shutdown().await;
    });
    let expiring = drive.clone();
    let drive_links = drive.clone();
    background.start("upload expiry", |stop| expire_uploads(expiring, stop));
    let trimmed = health_store.clone();
    background.start("feed trimming", |stop| trim_feeds(trimmed, keep, stop));
    background.start("health watch", |stop| {
        watch_health(health_store, health_reporter, stop)
    });
    background.start("revocation follower", |stop| auth.follow_revocations(stop));
    for (name, handle) in bus_tasks.into_iter().flatten() {
        background.add(name, bus_stop.clone(), handle);
    }
    tracing::info!(tasks = ?background.names(), "background tasks started");
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(secureconnect_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // The error details (`google.rpc.BadRequest`, `ErrorInfo`, `RetryInfo`), so
        // grpcurl and other reflection clients can print them.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(Error::internal)?;

    // No Nagle: events are small writes that must leave at once (with it, a stream's
    // frames can wait ~40 ms for a delayed ACK).
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

    let limits = RequestLimitsLayer {
        max_header_bytes: config.limits.max_header_bytes,
        max_request_bytes: config.limits.max_request_bytes,
    };
    let max_request = config.limits.max_request_bytes;
    let mut routes = tonic::service::Routes::builder();
    routes
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            AuthServiceServer::new(AuthApi(auth.clone())).max_decoding_message_size(max_request),
        )
        .add_service(
            UserServiceServer::new(UserApi {
                auth: auth.clone(),
                users,
            })
            .max_decoding_message_size(max_request),
        )
        .add_service(
            ConversationServiceServer::new(ConversationApi {
                auth: auth.clone(),
                chat: chat.clone(),
                polls: polls.clone(),
                calls: calls.clone(),
            })
            .max_decoding_message_size(max_request),
        )
        .add_service(
            MessageServiceServer::new(MessageApi {
                auth: auth.clone(),
                chat,
                polls: polls.clone(),
                calls: calls.clone(),
            })
            .max_decoding_message_size(max_request),
        )
        .add_service(
            DriveServiceServer::new(DriveApi {
                auth: auth.clone(),
                drive: drive.clone(),
            })
            .max_decoding_message_size(max_request),
        )
        .add_service(
            PollServiceServer::new(PollApi {
                auth: auth.clone(),
                polls: polls.clone(),
            })
            .max_decoding_message_size(max_request),
        )
        .add_service(
            PresenceServiceServer::new(PresenceApi {
                auth: auth.clone(),
                presence,
            })
            .max_decoding_message_size(max_request),
        )
        .add_service(
            CallServiceServer::new(CallApi {
                auth: auth.clone(),
                calls: calls.clone(),
                nodes: Default::default(),
            })
            .max_decoding_message_size(max_request),
        )
        .add_service(EventServer::new(
            EventApi {
                auth,
                events,
                polls,
                calls,
            },
            max_request,
        ));
    let routes = routes.routes();
    let web = match &config.web.dir {
        Some(dir) => {
            tracing::info!(dir = %dir.display(), "serving the web app on the same port");
            crate::web::StaticFilesLayer::serving(dir)?
        }
        None => crate::web::StaticFilesLayer::off(),
    };
    let web = web.with_share_links(drive_links);
    let router = layers::server_builder(
        Duration::from_secs(config.request_timeout_secs.max(1)),
        limits,
        web,
    )
    .add_routes(routes);

    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
            .await
    });
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "SecureConnect is serving gRPC and gRPC-web");
    Ok(Running {
        addr,
        shutdown,
        task,
        background,
    })
}

/// What nodes share in a cluster (in-process on one node): the event bus, rate-limit
/// counters, presence and where calls are carried.
type Shared = (
    Arc<dyn EventBus>,
    Arc<dyn RateLimiter>,
    Arc<dyn PresenceStore>,
    Arc<dyn Placement>,
);

/// How often health follows the database.
const HEALTH_PERIOD: Duration = Duration::from_secs(2);

/// How often feeds are trimmed to what a device can still be replayed.
const TRIM_PERIOD: Duration = Duration::from_secs(60);

/// Closes polls whose close time came, once a second on every node (each poll closes on
/// exactly one: see `PollStore::close_due`). The first round runs at start-up, so polls
/// that came due while the servers were down close at once.
fn close_due_polls(polls: Arc<Polls>, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match polls.close_due(chrono::Utc::now()).await {
                Ok(0) => {}
                Ok(closed) => tracing::debug!(closed, "polls closed at their close time"),
                Err(err) => tracing::warn!(error = %err, "closing due polls failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL_CLOSE_PERIOD) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    })
}

/// Removes uploads that expired, once a minute on every node (each upload goes once: see
/// `DriveStore::expire_uploads`); the first round at start-up.
fn expire_uploads(drive: Arc<Drive>, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match drive.expire_uploads(chrono::Utc::now()).await {
                Ok(0) => {}
                Ok(expired) => tracing::info!(expired, "expired uploads removed"),
                Err(err) => tracing::warn!(error = %err, "removing expired uploads failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(UPLOAD_EXPIRY_PERIOD) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    })
}

/// Times out rings that are due, once a second on every node (each call's ring times out
/// on exactly one: see `CallStore::ring_due`), and drops participants who joined here
/// and never connected. The first round runs at start-up.
fn sweep_calls(calls: Arc<Calls>, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match calls.sweep(chrono::Utc::now()).await {
                Ok(0) => {}
                Ok(rings) => tracing::debug!(rings, "call rings timed out"),
                Err(err) => tracing::warn!(error = %err, "sweeping calls failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(CALL_SWEEP_PERIOD) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    })
}

/// Keeps feeds to their replay window (see `store::sql::retention`), on every node: the
/// deletes are idempotent, and a node that is down leaves the job to the others.
fn trim_feeds(store: Arc<SqlStore>, keep: u64, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(TRIM_PERIOD) => {}
                _ = shutdown.cancelled() => return,
            }
            match store.trim_feeds(keep).await {
                Ok(trimmed) => tracing::debug!(?trimmed, "feeds trimmed"),
                Err(err) => tracing::warn!(error = %err, "feed trimming failed; retrying later"),
            }
        }
    })
}

/// Keeps gRPC health (the overall service `""`) in step with the database, so a load
/// balancer stops sending calls to a node that cannot serve them and resumes by itself.
fn watch_health(
    store: Arc<SqlStore>,
    reporter: HealthReporter,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut serving = None;
        loop {
            let up = store.ping().await;
            if serving != Some(up) {
                let status = if up {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                reporter.set_service_status("", status).await;
                if serving.is_some() {
                    tracing::warn!(database_up = up, "health changed");
                }
                serving = Some(up);
            }
            tokio::select! {
                _ = tokio::time::sleep(HEALTH_PERIOD) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    })
}
