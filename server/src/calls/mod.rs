//! Calls in conversations. The call service is being built in parts (issue 11): the SFU
//! that carries the media is `crate::sfu`; here is what a participant needs to reach it.

pub mod ice;
