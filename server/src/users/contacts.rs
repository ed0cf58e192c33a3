//! Contact requests and contacts.

use super::Users;
use crate::{
    auth::Principal,
    domain::{Contact, ContactRequest},
    error::{Error, Reason, Result},
    paging,
    store::ContactOutcome,
    validate::Violations,
};

/// What `send_contact_request` led to.
pub enum RequestResult {
    Pending(ContactRequest),
    Connected(Contact),
}

impl Users {
    pub async fn send_contact_request(
        &self,
        who: &Principal,
        user_id: &str,
        message: &str,
    ) -> Result<RequestResult> {
        let mut v = Violations::new();
        v.text("message", message, 0, 256);
        v.finish()?;
        let target = self.target(who, user_id).await?;
        if self.store.is_blocked_between(who.user_id, target).await? {
            return Err(Error::PermissionDenied {
                reason: Reason::Blocked,
                message: "you cannot add this user",
            });
        }
        let committed = self
            .contacts
            .request_contact(who.user_id, target, message.to_owned(), chrono::Utc::now())
            .await?;
        Ok(match self.publish(committed) {
            ContactOutcome::Pending(request) => RequestResult::Pending(request),
            ContactOutcome::Connected(contact) => RequestResult::Connected(contact),
        })
    }

    pub async fn respond_contact_request(
        &self,
        who: &Principal,
        user_id: &str,
        accept: bool,
    ) -> Result<Option<Contact>> {
        let mut v = Violations::new();
        let from = v.id("user_id", user_id);
        v.finish()?;
        let from = from.ok_or(Error::NotFound("contact request"))?;
        let committed = self
            .contacts
            .respond_contact(who.user_id, from, accept, chrono::Utc::now())
            .await?;
        Ok(self.publish(committed))
    }

    pub async fn contact_requests(
        &self,
        who: &Principal,
        incoming: bool,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<ContactRequest>, String)> {
        let mut v = Violations::new();
        let size = v.page_size("page_size", page_size, 50, 100);
        v.finish()?;
        let before = paging::decode_time_key("page_token", page_token)?;
        let requests = self
            .contacts
            .contact_requests(who.user_id, incoming, before, size)
            .await?;
        let next = paging::next_token(&requests, size, |last| {
            let other = if incoming { last.from.id } else { last.to.id };
            paging::encode_time_key(last.time, other)
        });
        Ok((requests, next))
    }

    pub async fn contacts(
        &self,
        who: &Principal,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Contact>, String)> {
        let mut v = Violations::new();
        let size = v.page_size("page_size", page_size, 50, 100);
        v.finish()?;
        let before = paging::decode_time_key("page_token", page_token)?;
        let contacts = self.contacts.contacts(who.user_id, before, size).await?;
        let next = paging::next_token(&contacts, size, |last| {
            paging::encode_time_key(last.since, last.user.id)
        });
        Ok((contacts, next))
    }

    pub async fn remove_contact(&self, who: &Principal, user_id: &str) -> Result<()> {
        let mut v = Violations::new();
        let other = v.id("user_id", user_id);
        v.finish()?;
        let other = other.ok_or(Error::NotFound("user"))?;
        let committed = self
            .contacts
            .remove_contact(who.user_id, other, chrono::Utc::now())
            .await?;
        self.publish(committed);
        Ok(())
    }
}
