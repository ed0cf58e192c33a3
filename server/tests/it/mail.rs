//! Password reset and email change, delivered through a real SMTP server (Python's
//! aiosmtpd, storing into a maildir) — and through the outbox in the embedded default.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::common::*;
use secureconnect_sdk::proto::{
    auth::v1::{
        ConfirmEmailChangeRequest, LoginRequest, RequestEmailChangeRequest,
        RequestPasswordResetRequest, ResetPasswordRequest,
    },
    user::v1::GetCurrentUserRequest,
};
use tonic::Code;

/// A real SMTP server on loopback that files every mail into a maildir.
struct SmtpSink {
    child: Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpSink {
    async fn start() -> Self {
        let maildir = tempfile::tempdir().expect("maildir");
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.path().join(sub)).expect("maildir layout");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let mut child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (installed by deploy/local/test.sh)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self {
                    child,
                    port,
                    maildir,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("aiosmtpd did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn mails(&self) -> Vec<String> {
        read_all(&self.maildir.path().join("new"))
    }

    /// The first mail to `to`, waiting up to 10 s.
    async fn mail_to(&self, to: &str) -> String {
        for _ in 0..100 {
            if let Some(mail) = self
                .mails()
                .into_iter()
                .find(|m| m.contains(&format!("To: {to}")))
            {
                return mail;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no mail to {to}; got {:?}", self.mails());
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_all(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect()
}

/// The code after "code: " in a mail body.
fn code_in(mail: &str) -> String {
    let start = mail.find("code: ").expect("a code in the mail") + "code: ".len();
    mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[tokio::test]
#[ignore = "needs python3 with aiosmtpd; run by deploy/local/test.sh"]
async fn a_password_reset_mail_lets_the_user_in_and_signs_out_everywhere() {
    let smtp = SmtpSink::start().await;
    let url = smtp.url();
    let server = TestServer::start_with(move |c| c.mail.smtp_url = Some(url.into())).await;
    let alice = server.register("alice").await;
    let anonymous = server.client().await;

    // Unknown addresses get the same answer and no mail.
    anonymous
        .auth()
        .request_password_reset(RequestPasswordResetRequest {
            email: "nobody@example.com".into(),
        })
        .await
        .expect("unknown email");
    anonymous
        .auth()
        .request_password_reset(RequestPasswordResetRequest {
            email: alice.email.clone(),
        })
        .await
        .expect("request");
    let mail = smtp.mail_to(&alice.email).await;
    assert!(mail.contains("Subject: Reset your password"), "{mail}");
    let code = code_in(&mail);
    assert_eq!(smtp.mails().len(), 1, "only the real account got mail");

    let short = anonymous
        .auth()
        .reset_password(ResetPasswordRequest {
            reset_code: code.clone(),
            new_password: "short".into(),
        })
        .await;
    assert_code(short, Code::InvalidArgument);
    anonymous
        .auth()
        .reset_password(ResetPasswordRequest {
            reset_code: code.clone(),
            new_password: "a-fresh-password".into(),
        })
        .await
        .expect("reset");
    let reused = anonymous
        .auth()
        .reset_password(ResetPasswordRequest {
            reset_code: code,
            new_password: "another-password".into(),
        })
        .await;
    assert_eq!(
        violated_fields(&assert_code(reused, Code::InvalidArgument)),
        ["reset_code"]
    );

    assert_code(
        alice
            .client
            .users()
            .get_current_user(GetCurrentUserRequest {})
            .await,
        Code::Unauthenticated,
    );
    let login = |password: &str| LoginRequest {
        email: alice.email.clone(),
        password: password.into(),
        device: None,
    };
    assert_code(
        anonymous.auth().login(login(&alice.password)).await,
        Code::Unauthenticated,
    );
    anonymous
        .auth()
        .login(login("a-fresh-password"))
        .await
        .expect("new password works");
    server.shutdown().await;
}

#[tokio::test]
#[ignore = "needs python3 with aiosmtpd; run by deploy/local/test.sh"]
async fn an_email_change_takes_effect_only_when_the_new_address_confirms() {
    let smtp = SmtpSink::start().await;
    let url = smtp.url();
    let server = TestServer::start_with(move |c| c.mail.smtp_url = Some(url.into())).await;
    let (alice, bob) = server.pair().await;
    let auth = alice.client.auth();

    let taken = auth
        .clone()
        .request_email_change(RequestEmailChangeRequest {
            new_email: bob.email.clone(),
            password: alice.password.clone(),
        })
        .await;
    assert_code(taken, Code::AlreadyExists);
    let wrong = auth
        .clone()
        .request_email_change(RequestEmailChangeRequest {
            new_email: "new@example.org".into(),
            password: "wrong-password".into(),
        })
        .await;
    assert_code(wrong, Code::Unauthenticated);
    auth.clone()
        .request_email_change(RequestEmailChangeRequest {
            new_email: "New@Example.org".into(),
            password: alice.password.clone(),
        })
        .await
        .expect("request");

    let confirm = smtp.mail_to("new@example.org").await;
    let notice = smtp.mail_to(&alice.email).await;
    assert!(
        notice.contains("new@example.org"),
        "the old address is told: {notice}"
    );
    let me = alice
        .client
        .users()
        .get_current_user(GetCurrentUserRequest {})
        .await
        .expect("me")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(me.email, alice.email, "nothing changes before confirmation");

    let confirmed = server
        .client()
        .await
        .auth()
        .confirm_email_change(ConfirmEmailChangeRequest {
            confirmation_code: code_in(&confirm),
        })
        .await
        .expect("confirm")
        .into_inner();
    assert_eq!(confirmed.email, "new@example.org");
    let me = alice
        .client
        .users()
        .get_current_user(GetCurrentUserRequest {})
        .await
        .expect("me")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(me.email, "new@example.org");
    let login = server
        .client()
        .await
        .auth()
        .login(LoginRequest {
            email: "new@example.org".into(),
            password: alice.password.clone(),
            device: None,
        })
        .await;
    login.expect("sign in with the new address");
    server.shutdown().await;
}

#[tokio::test]
async fn without_smtp_mail_lands_in_the_outbox() {
    let data = tempfile::tempdir().expect("data dir");
    let data_dir: PathBuf = data.path().to_path_buf();
    let dir = data_dir.clone();
    let server = TestServer::start_with(move |c| c.data_dir = dir).await;
    let alice = server.register("alice").await;
    server
        .client()
        .await
        .auth()
        .request_password_reset(RequestPasswordResetRequest {
            email: alice.email.clone(),
        })
        .await
        .expect("request");
    let outbox = data_dir.join("outbox");
    for _ in 0..100 {
        if let Some(mail) = read_all(&outbox).into_iter().next() {
            assert!(
                mail.contains("To: alice@example.com") && mail.contains("code: "),
                "{mail}"
            );
            server.shutdown().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no mail in {}", outbox.display());
}
