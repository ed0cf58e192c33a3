//! Start-up and teardown, top to bottom: storage → keys → bus → domain services →
//! gRPC server (with gRPC-web, CORS, health and reflection) → graceful shutdown.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use secureconnect_proto::{
    auth::v1::auth_service_server::AuthServiceServer,
    conversation::v1::conversation_service_server::ConversationServiceServer,
    event::v1::event_service_server::EventServiceServer,
    message::v1::message_service_server::MessageServiceServer,
    presence::v1::presence_service_server::PresenceServiceServer,
    user::v1::user_service_server::UserServiceServer,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    api::{
        auth::AuthApi, conversation::ConversationApi, event::EventApi, message::MessageApi,
        presence::PresenceApi, user::UserApi,
    },
    auth::{Auth, AuthParts, TokenAuthority},
    bus::{EventBus, LocalBus, RedisBus, RedisHandles},
    chat::Chat,
    config::Config,
    error::{Error, Result},
    events::Events,
    layers,
    mail::{self, Mailer},
    presence::{LocalPresence, Presence, PresenceStore, RedisPresence},
    ratelimit::{LocalRateLimiter, RateLimiter, RedisRateLimiter},
    request_limits::RequestLimitsLayer,
    store::{ChatStore, ContactStore, SessionStore, UserStore, cql::CqlHistory, sql::SqlStore},
    users::Users,
};

/// How many events the in-process bus holds for streams that fall behind.
const BUS_CAPACITY: usize = 4096;

/// A server that is accepting connections.
pub struct Running {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Running {
    /// Asks open streams to reconnect elsewhere, stops accepting, and waits for the end.
    pub async fn shutdown(self) -> Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the server stops (after [`Running::shutdown`] or a fatal error).
    pub async fn wait(self) -> Result<()> {
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(Error::internal(format!("server failed: {err}"))),
            Err(err) => Err(Error::internal(format!("server task failed: {err}"))),
        }
    }

    /// Stops at once, like a crash: connections drop with no `closing` event and no drain.
    /// (For fault tests; committed data is already durable, so nothing is lost.)
    pub fn abort(self) {
        self.task.abort();
        self.shutdown.cancel();
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
        Some(_) => Some(CqlHistory::connect(&config.cql).await?),
    };
    let database_url = config.effective_database_url();
    let store = SqlStore::connect(database_url.expose(), &config.database, history).await?;
    let health_store = store.clone();
    let user_store: Arc<dyn UserStore> = store.clone();
    let session_store: Arc<dyn SessionStore> = store.clone();
    let contact_store: Arc<dyn ContactStore> = store.clone();
    let chat_store: Arc<dyn ChatStore> = store;

    let tokens = TokenAuthority::load_or_create(
        &config.root_key_path(),
        Duration::from_secs(config.auth.access_token_ttl_secs),
    )?;
    let shutdown = CancellationToken::new();
    // One node: everything in-process. A cluster: Redis carries events, revocations,
    // rate-limit counters and presence between nodes.
    let (bus, limiter, presence_store): Shared = match &config.redis.url {
        None => (
            Arc::new(LocalBus::new(BUS_CAPACITY)),
            Arc::new(LocalRateLimiter::default()),
            Arc::new(LocalPresence::default()),
        ),
        Some(url) => {
            let redis = RedisHandles::new(url.expose(), &config.redis.key_prefix)?;
            (
                RedisBus::start(&redis, BUS_CAPACITY, shutdown.clone()),
                Arc::new(RedisRateLimiter::new(redis.pool.clone(), &redis.prefix)),
                Arc::new(RedisPresence::new(redis.pool.clone(), &redis.prefix)),
            )
        }
    };

    let mailer: Arc<dyn Mailer> = Arc::from(mail::from_config(&config.mail, &config.data_dir)?);
    let parts = AuthParts {
        users: user_store.clone(),
        sessions: session_store,
        tokens,
        mailer,
        bus: bus.clone(),
        limiter: limiter.clone(),
    };
    let auth = Arc::new(Auth::new(parts, &config.auth, config.mail.public_url.clone()).await?);
    auth.follow_revocations(shutdown.clone());
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
        limiter,
        config.limits.clone(),
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
    trim_feeds(
        health_store.clone(),
        config.stream.max_replay_events,
        shutdown.clone(),
    );
    watch_health(health_store, health_reporter, shutdown.clone());
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(secureconnect_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // The error details (`google.rpc.BadRequest`, `ErrorInfo`, `RetryInfo`), so
        // grpcurl and other reflection clients can print them.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(Error::internal)?;

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::internal(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener.local_addr().map_err(Error::internal)?;
    // No Nagle: events are small writes that must leave at once (with it, a stream's
    // frames can wait ~40 ms for a delayed ACK).
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

    let limits = RequestLimitsLayer {
        max_header_bytes: config.limits.max_header_bytes,
        max_request_bytes: config.limits.max_request_bytes,
    };
    let max_request = config.limits.max_request_bytes;
    let router = layers::server_builder(
        Duration::from_secs(config.request_timeout_secs.max(1)),
        limits,
    )
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
        })
        .max_decoding_message_size(max_request),
    )
    .add_service(
        MessageServiceServer::new(MessageApi {
            auth: auth.clone(),
            chat,
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
        EventServiceServer::new(EventApi { auth, events }).max_decoding_message_size(max_request),
    );

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
    })
}

/// What nodes share in a cluster (in-process on one node): the event bus, rate-limit
/// counters and presence.
type Shared = (
    Arc<dyn EventBus>,
    Arc<dyn RateLimiter>,
    Arc<dyn PresenceStore>,
);

/// How often health follows the database.
const HEALTH_PERIOD: Duration = Duration::from_secs(2);

/// Keeps gRPC health (the overall service `""`) in step with the database, so a load
/// balancer stops sending calls to a node that cannot serve them and resumes by itself.
/// How often feeds are trimmed to what a device can still be replayed.
const TRIM_PERIOD: Duration = Duration::from_secs(60);

/// Keeps feeds to their replay window (see `store::sql::retention`), on every node: the
/// deletes are idempotent, and a node that is down leaves the job to the others.
fn trim_feeds(store: Arc<SqlStore>, keep: u64, shutdown: CancellationToken) {
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
    });
}

fn watch_health(store: Arc<SqlStore>, reporter: HealthReporter, shutdown: CancellationToken) {
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
    });
}
