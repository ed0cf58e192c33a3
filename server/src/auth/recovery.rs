//! Password reset and email change: single-use codes delivered by mail.

use std::{net::IpAddr, sync::Arc, time::Duration};

use super::{Auth, Principal, hash_token, random_token};
use crate::{
    error::{Error, Reason, Result},
    mail::{Mail, Mailer},
    store::{CodePurpose, OneTimeCode},
    validate::{self, Violations},
};

/// How long an emailed code stays valid.
const CODE_TTL: Duration = Duration::from_secs(3600);

fn invalid_code(field: &str) -> Error {
    Error::invalid(field, "unknown, already used or expired code")
}

impl Auth {
    /// Emails a reset code if `email` has an account. Returns the same way either way,
    /// and sends in the background so timing does not tell either.
    pub async fn request_password_reset(&self, email: &str, client: Option<IpAddr>) -> Result<()> {
        let mut v = Violations::new();
        let email = validate::email(&mut v, "email", email);
        v.finish()?;
        self.throttle_sign_in(&email, client).await?;
        let Some((user, _)) = self.users.user_by_email(&email).await? else {
            return Ok(());
        };
        let code = random_token();
        self.sessions
            .create_code(OneTimeCode {
                code_hash: hash_token(&code),
                purpose: CodePurpose::PasswordReset,
                user_id: user.id,
                new_email: None,
                expire_time: chrono::Utc::now() + CODE_TTL,
            })
            .await?;
        let body = format!(
            "Hello {name},\n\nSomeone (hopefully you) asked to reset your SecureConnect password.\n\
             {action}\n\nThe code works once, for one hour. If you did not ask, ignore this mail:\n\
             your password stays as it is.\n",
            name = user.display_name,
            action = self.code_action("reset-password", &code, "reset code"),
        );
        self.send_in_background(Mail {
            to: email,
            subject: "Reset your password".into(),
            body,
        });
        Ok(())
    }

    /// Sets a new password with an emailed code and ends every session of the account.
    pub async fn reset_password(&self, code: &str, new_password: String) -> Result<()> {
        let mut v = Violations::new();
        if code.is_empty() {
            v.add("reset_code", "required");
        }
        validate::password(&mut v, "new_password", &new_password);
        v.finish()?;
        let hash = hash_token(code);
        let consumed = self
            .sessions
            .consume_code(&hash, CodePurpose::PasswordReset, chrono::Utc::now())
            .await?
            .ok_or_else(|| invalid_code("reset_code"))?;
        let password_hash = self.passwords.hash(new_password).await?;
        self.users
            .set_password_hash(consumed.user_id, password_hash)
            .await?;
        self.end_all_sessions(consumed.user_id).await
    }

    /// Emails a confirmation code to `new_email` (and a notice to the current address).
    pub async fn request_email_change(
        &self,
        who: &Principal,
        new_email: &str,
        password: String,
    ) -> Result<()> {
        let mut v = Violations::new();
        let new_email = validate::email(&mut v, "new_email", new_email);
        v.finish()?;
        self.confirm_password(who, password).await?;
        if self.users.user_by_email(&new_email).await?.is_some() {
            return Err(Error::AlreadyExists {
                reason: Reason::EmailTaken,
                message: "this email address is already registered",
            });
        }
        let user = self
            .users
            .user(who.user_id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let code = random_token();
        self.sessions
            .create_code(OneTimeCode {
                code_hash: hash_token(&code),
                purpose: CodePurpose::EmailChange,
                user_id: user.id,
                new_email: Some(new_email.clone()),
                expire_time: chrono::Utc::now() + CODE_TTL,
            })
            .await?;
        let confirm = format!(
            "Hello {name},\n\nConfirm {new_email} as the email of your SecureConnect account.\n\
             {action}\n\nThe code works once, for one hour.\n",
            name = user.display_name,
            action = self.code_action("confirm-email", &code, "confirmation code"),
        );
        self.send_in_background(Mail {
            to: new_email.clone(),
            subject: "Confirm your new email".into(),
            body: confirm,
        });
        let notice = format!(
            "Hello {name},\n\nA change of your SecureConnect email to {new_email} was requested.\n\
             If this was not you, change your password now.\n",
            name = user.display_name,
        );
        self.send_in_background(Mail {
            to: user.email,
            subject: "Your email is being changed".into(),
            body: notice,
        });
        Ok(())
    }

    /// Completes an email change; returns the new address.
    pub async fn confirm_email_change(&self, code: &str) -> Result<String> {
        if code.is_empty() {
            return Err(Error::invalid("confirmation_code", "required"));
        }
        let consumed = self
            .sessions
            .consume_code(
                &hash_token(code),
                CodePurpose::EmailChange,
                chrono::Utc::now(),
            )
            .await?
            .ok_or_else(|| invalid_code("confirmation_code"))?;
        let email = consumed
            .new_email
            .ok_or_else(|| Error::internal("email change code without an address"))?;
        self.users.set_email(consumed.user_id, &email).await?;
        Ok(email)
    }

    /// The sentence that hands the code over: a link when the app's URL is known.
    fn code_action(&self, path: &str, code: &str, what: &str) -> String {
        match &self.public_url {
            None => format!("Your {what}: {code}"),
            Some(url) => format!(
                "Open {}/{path}?code={code}\n(or enter the {what}: {code})",
                url.trim_end_matches('/')
            ),
        }
    }

    fn send_in_background(&self, mail: Mail) {
        let mailer: Arc<dyn Mailer> = Arc::clone(&self.mailer);
        tokio::spawn(async move {
            let to = mail.to.clone();
            if let Err(err) = mailer.send(mail).await {
                tracing::warn!(%to, error = %err, "could not send mail");
            }
        });
    }
}
