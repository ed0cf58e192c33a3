//! `secureconnect.auth.v1.AuthService`.

use std::sync::Arc;

use secureconnect_proto::auth::v1::{self as pb, auth_service_server::AuthService};
use tonic::{Request, Response, Status};

use super::{convert, principal};
use crate::auth::{Auth, Device, Operation, Registration};

pub struct AuthApi(pub Arc<Auth>);

fn device(d: Option<pb::DeviceInfo>) -> Device {
    d.map(|d| Device {
        name: d.name,
        platform: d.platform,
    })
    .unwrap_or_default()
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let r = req.into_inner();
        let (user, tokens) = self
            .0
            .register(Registration {
                email: r.email,
                password: r.password,
                username: r.username,
                display_name: r.display_name,
                device: device(r.device),
            })
            .await?;
        Ok(Response::new(pb::RegisterResponse {
            user_id: user.id.to_string(),
            tokens: Some(convert::tokens(tokens)),
        }))
    }

    async fn login(
        &self,
        req: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let client = req.remote_addr().map(|a| a.ip());
        let r = req.into_inner();
        let (user, tokens) = self
            .0
            .login(&r.email, r.password, device(r.device), client)
            .await?;
        Ok(Response::new(pb::LoginResponse {
            user_id: user.id.to_string(),
            tokens: Some(convert::tokens(tokens)),
        }))
    }

    async fn refresh_token(
        &self,
        req: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::RefreshTokenResponse>, Status> {
        let tokens = self.0.refresh(&req.into_inner().refresh_token).await?;
        Ok(Response::new(pb::RefreshTokenResponse {
            tokens: Some(convert::tokens(tokens)),
        }))
    }

    async fn logout(
        &self,
        req: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let who = principal(&self.0, &req, Operation::Write)?;
        self.0.logout(&who).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn list_sessions(
        &self,
        req: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let who = principal(&self.0, &req, Operation::Read)?;
        let r = req.into_inner();
        let (sessions, next_page_token) = self
            .0
            .list_sessions(&who, r.page_size, &r.page_token)
            .await?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: sessions
                .into_iter()
                .map(|s| convert::session(s, who.session_id))
                .collect(),
            next_page_token,
        }))
    }

    async fn revoke_session(
        &self,
        req: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        let who = principal(&self.0, &req, Operation::Write)?;
        self.0
            .revoke_session(&who, &req.into_inner().session_id)
            .await?;
        Ok(Response::new(pb::RevokeSessionResponse {}))
    }

    async fn change_password(
        &self,
        req: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let who = principal(&self.0, &req, Operation::Write)?;
        let r = req.into_inner();
        self.0
            .change_password(&who, r.current_password, r.new_password)
            .await?;
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }

    async fn request_password_reset(
        &self,
        req: Request<pb::RequestPasswordResetRequest>,
    ) -> Result<Response<pb::RequestPasswordResetResponse>, Status> {
        let client = req.remote_addr().map(|a| a.ip());
        self.0
            .request_password_reset(&req.into_inner().email, client)
            .await?;
        Ok(Response::new(pb::RequestPasswordResetResponse {}))
    }

    async fn reset_password(
        &self,
        req: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let r = req.into_inner();
        self.0.reset_password(&r.reset_code, r.new_password).await?;
        Ok(Response::new(pb::ResetPasswordResponse {}))
    }

    async fn request_email_change(
        &self,
        req: Request<pb::RequestEmailChangeRequest>,
    ) -> Result<Response<pb::RequestEmailChangeResponse>, Status> {
        let who = principal(&self.0, &req, Operation::Write)?;
        let r = req.into_inner();
        self.0
            .request_email_change(&who, &r.new_email, r.password)
            .await?;
        Ok(Response::new(pb::RequestEmailChangeResponse {}))
    }

    async fn confirm_email_change(
        &self,
        req: Request<pb::ConfirmEmailChangeRequest>,
    ) -> Result<Response<pb::ConfirmEmailChangeResponse>, Status> {
        let email = self
            .0
            .confirm_email_change(&req.into_inner().confirmation_code)
            .await?;
        Ok(Response::new(pb::ConfirmEmailChangeResponse { email }))
    }
}
