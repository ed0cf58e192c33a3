//! Building a [`Client`]: address, TLS, timeouts, user agent, where the session is kept.

use std::{sync::Arc, time::Duration};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::{Client, Error, MemoryTokenStore, TokenStore};

/// Settings for a [`Client`]; from [`Client::builder`].
pub struct ClientBuilder {
    url: String,
    tls_roots: Vec<Vec<u8>>,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    user_agent: String,
    store: Arc<dyn TokenStore>,
}

impl ClientBuilder {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tls_roots: Vec::new(),
            timeout: None,
            connect_timeout: Duration::from_secs(10),
            user_agent: format!("secureconnect-sdk-rust/{}", env!("CARGO_PKG_VERSION")),
            store: Arc::new(MemoryTokenStore::default()),
        }
    }

    /// Trusts this CA (PEM) for `https://` servers, instead of the public web roots
    /// (self-hosted servers with a private CA). Call again to add more.
    pub fn tls_root_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.tls_roots.push(pem.as_ref().to_vec());
        self
    }

    /// Longest a unary call may take (a stream's whole life is not bounded by it).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Longest to wait for a connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Prefixes the SDK's `user-agent`, e.g. `"my-app/2.1"`.
    pub fn user_agent(mut self, app: impl AsRef<str>) -> Self {
        self.user_agent = format!("{} {}", app.as_ref(), self.user_agent);
        self
    }

    /// Where the session is kept between runs (default: memory only). The stored
    /// session, if any, is loaded when the client is built.
    pub fn token_store(mut self, store: impl TokenStore + 'static) -> Self {
        self.store = Arc::new(store);
        self
    }

    /// Connects now: fails at once when the server cannot be reached.
    pub async fn connect(self) -> Result<Client, Error> {
        let endpoint = self.endpoint()?;
        let channel = endpoint.connect().await?;
        self.finish(channel)
    }

    /// Connects on the first call (and reconnects whenever needed).
    pub fn connect_lazy(self) -> Result<Client, Error> {
        let channel = self.endpoint()?.connect_lazy();
        self.finish(channel)
    }

    fn endpoint(&self) -> Result<Endpoint, Error> {
        let mut endpoint = Endpoint::from_shared(self.url.clone())?
            .user_agent(self.user_agent.clone())?
            .connect_timeout(self.connect_timeout);
        if let Some(timeout) = self.timeout {
            endpoint = endpoint.timeout(timeout);
        }
        if self.url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            tls = if self.tls_roots.is_empty() {
                tls.with_webpki_roots()
            } else {
                self.tls_roots.iter().fold(tls, |tls, pem| {
                    tls.ca_certificate(Certificate::from_pem(pem))
                })
            };
            endpoint = endpoint.tls_config(tls)?;
        }
        Ok(endpoint)
    }

    fn finish(self, channel: tonic::transport::Channel) -> Result<Client, Error> {
        let session = self.store.load().map_err(Error::TokenStore)?;
        Ok(Client::assemble(channel, self.store, session))
    }
}
