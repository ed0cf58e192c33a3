//! Calls in conversations. The call service is being built in parts (issue 11): the SFU
//! that carries the media is `crate::sfu`; here are a call's rules and what a participant
//! needs to reach the SFU.

pub mod ice;
pub mod lifecycle;
