//! `secureconnect.user.v1.UserService`.

use std::sync::Arc;

use secureconnect_proto::user::v1::{self as pb, user_service_server::UserService};
use tonic::{Request, Response, Status};

use super::{convert, mask_paths, principal};
use crate::{
    auth::{Auth, Operation},
    users::{ProfileChanges, RequestResult, Users},
};

pub struct UserApi {
    pub auth: Arc<Auth>,
    pub users: Arc<Users>,
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn get_current_user(
        &self,
        req: Request<pb::GetCurrentUserRequest>,
    ) -> Result<Response<pb::GetCurrentUserResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let user = self.users.current(&who).await?;
        Ok(Response::new(pb::GetCurrentUserResponse {
            user: Some(convert::user(user, true)),
        }))
    }

    async fn update_current_user(
        &self,
        req: Request<pb::UpdateCurrentUserRequest>,
    ) -> Result<Response<pb::UpdateCurrentUserResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let paths = mask_paths(r.update_mask, &["display_name", "username", "avatar_url"])?;
        let user = r.user.unwrap_or_default();
        let has = |p: &str| paths.iter().any(|x| x == p);
        let changes = ProfileChanges {
            username: has("username").then_some(user.username),
            display_name: has("display_name").then_some(user.display_name),
            avatar_url: has("avatar_url").then_some(user.avatar_url),
        };
        let user = self.users.update_current(&who, changes).await?;
        Ok(Response::new(pb::UpdateCurrentUserResponse {
            user: Some(convert::user(user, true)),
        }))
    }

    async fn get_user(
        &self,
        req: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let user = self.users.get(&req.into_inner().user_id).await?;
        let own = user.id == who.user_id;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(convert::user(user, own)),
        }))
    }

    async fn search_users(
        &self,
        req: Request<pb::SearchUsersRequest>,
    ) -> Result<Response<pb::SearchUsersResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let r = req.into_inner();
        let (users, next_page_token) = self
            .users
            .search(&who, &r.query, r.page_size, &r.page_token)
            .await?;
        Ok(Response::new(pb::SearchUsersResponse {
            users: users.into_iter().map(|u| convert::user(u, false)).collect(),
            next_page_token,
        }))
    }

    async fn block_user(
        &self,
        req: Request<pb::BlockUserRequest>,
    ) -> Result<Response<pb::BlockUserResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        self.users.block(&who, &req.into_inner().user_id).await?;
        Ok(Response::new(pb::BlockUserResponse {}))
    }

    async fn unblock_user(
        &self,
        req: Request<pb::UnblockUserRequest>,
    ) -> Result<Response<pb::UnblockUserResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        self.users.unblock(&who, &req.into_inner().user_id).await?;
        Ok(Response::new(pb::UnblockUserResponse {}))
    }

    async fn list_blocked_users(
        &self,
        req: Request<pb::ListBlockedUsersRequest>,
    ) -> Result<Response<pb::ListBlockedUsersResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let r = req.into_inner();
        let (users, next_page_token) = self.users.blocked(&who, r.page_size, &r.page_token).await?;
        Ok(Response::new(pb::ListBlockedUsersResponse {
            users: users.into_iter().map(|u| convert::user(u, false)).collect(),
            next_page_token,
        }))
    }

    async fn delete_current_user(
        &self,
        req: Request<pb::DeleteCurrentUserRequest>,
    ) -> Result<Response<pb::DeleteCurrentUserResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        self.users
            .delete_current(&who, req.into_inner().password)
            .await?;
        Ok(Response::new(pb::DeleteCurrentUserResponse {}))
    }

    async fn send_contact_request(
        &self,
        req: Request<pb::SendContactRequestRequest>,
    ) -> Result<Response<pb::SendContactRequestResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let result = self
            .users
            .send_contact_request(&who, &r.user_id, &r.message)
            .await?;
        let response = match result {
            RequestResult::Pending(request) => pb::SendContactRequestResponse {
                request: Some(convert::contact_request(request)),
                contact: None,
            },
            RequestResult::Connected(contact) => pb::SendContactRequestResponse {
                request: None,
                contact: Some(convert::contact(contact)),
            },
        };
        Ok(Response::new(response))
    }

    async fn respond_contact_request(
        &self,
        req: Request<pb::RespondContactRequestRequest>,
    ) -> Result<Response<pb::RespondContactRequestResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        let r = req.into_inner();
        let contact = self
            .users
            .respond_contact_request(&who, &r.user_id, r.accept)
            .await?;
        Ok(Response::new(pb::RespondContactRequestResponse {
            contact: contact.map(convert::contact),
        }))
    }

    async fn list_contact_requests(
        &self,
        req: Request<pb::ListContactRequestsRequest>,
    ) -> Result<Response<pb::ListContactRequestsResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let r = req.into_inner();
        let incoming = r.direction != i32::from(pb::ContactRequestDirection::Outgoing);
        let (requests, next_page_token) = self
            .users
            .contact_requests(&who, incoming, r.page_size, &r.page_token)
            .await?;
        Ok(Response::new(pb::ListContactRequestsResponse {
            requests: requests.into_iter().map(convert::contact_request).collect(),
            next_page_token,
        }))
    }

    async fn list_contacts(
        &self,
        req: Request<pb::ListContactsRequest>,
    ) -> Result<Response<pb::ListContactsResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Read)?;
        let r = req.into_inner();
        let (contacts, next_page_token) = self
            .users
            .contacts(&who, r.page_size, &r.page_token)
            .await?;
        Ok(Response::new(pb::ListContactsResponse {
            contacts: contacts.into_iter().map(convert::contact).collect(),
            next_page_token,
        }))
    }

    async fn remove_contact(
        &self,
        req: Request<pb::RemoveContactRequest>,
    ) -> Result<Response<pb::RemoveContactResponse>, Status> {
        let who = principal(&self.auth, &req, Operation::Write)?;
        self.users
            .remove_contact(&who, &req.into_inner().user_id)
            .await?;
        Ok(Response::new(pb::RemoveContactResponse {}))
    }
}
