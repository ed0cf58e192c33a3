//! Which media stream each of a peer's tracks belongs to, from its SDP offer (`a=msid:`,
//! RFC 8830), so that the SFU can keep a peer's streams apart when it forwards them: a
//! camera with its microphone in one, a screen share in another.

use std::collections::HashMap;

/// The stream of each m-section that names one, by mid.
pub fn streams_by_mid(sdp: &str) -> HashMap<String, String> {
    let mut streams = HashMap::new();
    for section in sdp.split("\nm=").skip(1) {
        let attribute = |name: &str| {
            section
                .lines()
                .find_map(|line| line.trim_end().strip_prefix(name).map(str::to_owned))
        };
        let mid = attribute("a=mid:");
        let stream = attribute("a=msid:").and_then(|msid| {
            let stream = msid.split(' ').next()?.to_owned();
            // "-" is "no stream" (RFC 8830 §2).
            (!stream.is_empty() && stream != "-").then_some(stream)
        });
        if let (Some(mid), Some(stream)) = (mid, stream) {
            streams.insert(mid, stream);
        }
    }
    streams
}

/// The stream id the others see a peer's track under: the peer's id for its first stream
/// (and for tracks in none), `<peer id>.<n>` for its n-th other stream.
pub fn forwarded_stream(peer: uuid::Uuid, index: usize) -> String {
    if index == 0 {
        peer.to_string()
    } else {
        format!("{peer}.{index}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_read_per_m_section() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=msid:cam a1\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=msid:cam v1\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=msid:screen v2\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:3\r\na=msid:- v3\r\n\
            m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:4\r\n";
        let streams = streams_by_mid(sdp);
        assert_eq!(streams.len(), 3);
        assert_eq!(streams["0"], "cam");
        assert_eq!(streams["1"], "cam");
        assert_eq!(streams["2"], "screen");
        let peer = uuid::Uuid::nil();
        assert_eq!(forwarded_stream(peer, 0), peer.to_string());
        assert_eq!(forwarded_stream(peer, 2), format!("{peer}.2"));
    }
}
