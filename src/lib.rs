//! Generated protobuf messages and gRPC clients/servers for the SecureConnect API.
//!
//! The contract lives in `proto/`; `build.rs` is the only place code is generated.

// Unit tests may unwrap and panic: the house rule (workspace lints) is for request paths.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod codec;

/// Serialized `FileDescriptorSet` of every SecureConnect proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/secureconnect_descriptor.bin"));

/// Shared types (`secureconnect.type.v1`).
pub mod types {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("secureconnect.r#type.v1");
    }
}

macro_rules! domain_package {
    ($($(#[$doc:meta])* $module:ident => $package:literal),+ $(,)?) => {
        $(
            $(#[$doc])*
            pub mod $module {
                /// Version 1.
                pub mod v1 {
                    tonic::include_proto!($package);
                }
            }
        )+
    };
}

domain_package! {
    /// Accounts, sign-in and sessions (`secureconnect.auth.v1`).
    auth => "secureconnect.auth.v1",
    /// Profiles and blocks (`secureconnect.user.v1`).
    user => "secureconnect.user.v1",
    /// Conversations and members (`secureconnect.conversation.v1`).
    conversation => "secureconnect.conversation.v1",
    /// Messages (`secureconnect.message.v1`).
    message => "secureconnect.message.v1",
    /// The real-time event stream (`secureconnect.event.v1`).
    event => "secureconnect.event.v1",
    /// Who is online and who is typing (`secureconnect.presence.v1`).
    presence => "secureconnect.presence.v1",
    /// The cloud drive (`secureconnect.drive.v1`).
    drive => "secureconnect.drive.v1",
    /// Polls and voting (`secureconnect.poll.v1`).
    poll => "secureconnect.poll.v1",
    /// Audio and video calls (`secureconnect.call.v1`).
    call => "secureconnect.call.v1",
    /// Internal: what nodes store and send each other (`secureconnect.storage.v1`); never
    /// served to clients.
    storage => "secureconnect.storage.v1",
}
