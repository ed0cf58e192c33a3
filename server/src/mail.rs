//! Outgoing mail: SMTP via lettre in production; in the embedded default, each mail is
//! written to `data_dir/outbox` as an `.eml` file (and logged), so a single-machine setup
//! works with no mail server.

use std::path::PathBuf;

use async_trait::async_trait;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, message::Mailbox,
    message::header::ContentType,
};

use crate::{
    config::MailConfig,
    error::{Error, Result},
};

/// One plain-text mail.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Delivers mail.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: Mail) -> Result<()>;
}

/// Builds the mailer the configuration asks for.
pub fn from_config(config: &MailConfig, data_dir: &std::path::Path) -> Result<Box<dyn Mailer>> {
    let from: Mailbox = config
        .from
        .parse()
        .map_err(|e| Error::internal(format!("mail.from {:?}: {e}", config.from)))?;
    let Some(smtp_url) = &config.smtp_url else {
        return Ok(Box::new(OutboxMailer {
            dir: data_dir.join("outbox"),
            from,
        }));
    };
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url.expose())
        .map_err(|e| Error::internal(format!("mail.smtp_url: {e}")))?
        .build();
    Ok(Box::new(SmtpMailer { transport, from }))
}

fn message(from: &Mailbox, mail: &Mail) -> Result<Message> {
    let to: Mailbox = mail.to.parse().map_err(Error::internal)?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(Error::internal)
}

/// Sends over SMTP.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: Mail) -> Result<()> {
        let message = message(&self.from, &mail)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| Error::Unavailable(format!("SMTP: {e}")))
    }
}

/// Writes each mail to a file (embedded default).
pub struct OutboxMailer {
    dir: PathBuf,
    from: Mailbox,
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, mail: Mail) -> Result<()> {
        let message = message(&self.from, &mail)?;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(Error::internal)?;
        let path = self.dir.join(format!("{}.eml", uuid::Uuid::now_v7()));
        tokio::fs::write(&path, message.formatted())
            .await
            .map_err(Error::internal)?;
        tracing::info!(to = %mail.to, subject = %mail.subject, path = %path.display(), "mail written to the outbox (no SMTP configured)");
        Ok(())
    }
}
