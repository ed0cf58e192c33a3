//! Calls in conversations: their rules (`lifecycle`), the live state of the calls this
//! node carries (`rooms`), what a participant needs to reach the SFU (`ice`), and the
//! service that drives them and the SFU (`crate::sfu`), which carries the media.

pub mod ice;
pub mod lifecycle;
pub mod placement;
pub mod rooms;
mod service;

pub use placement::Carrier;
pub use rooms::{CallView, Closing, Live, MediaState, WatchItem};
pub use service::{CallPage, Calls, CallsParts, ClientSignal, IceServer, SignalReply};
