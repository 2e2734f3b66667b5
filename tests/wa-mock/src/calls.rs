//! Calls: what WhatsApp's server sends a callee's devices when someone calls them, and when
//! the caller hangs up.
//!
//! A call is signalled in `<call>` stanzas, not messages: the caller's `<offer>` reaches
//! every device of the callee as
//! `<call from=<caller LID> id t notify platform version><offer call-id call-creator=<caller
//! LID> caller_pn=<caller PN> ...><audio enc rate/>...[<video/>]<net medium/></offer></call>`
//! (whatsapp-rust's `stanza::call` parser needs `from` and `t` on the call, `call-id` and
//! `call-creator` on the offer, `enc` and a numeric `rate` on each `<audio>`; any `<video>`
//! child makes it a video call; whatsmeow's `call.go` reads the same attributes). A device
//! that is offline gets the offer when it reconnects, marked `offline` (it is a missed
//! call by then). The end of a call is a `<terminate call-id call-creator reason/>` the same
//! way.
//!
//! The callee's client answers with an `<ack class="call">` and a `<receipt><offer/>
//! </receipt>`, and declines with `<call to><reject call-id call-creator count="0"/></call>`:
//! the stanza record keeps them for tests.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::state::{DeviceAddr, State, now_ms, now_secs};

/// The caller's JID as calls name it (its LID) and its phone-number JID.
fn caller_jids(st: &State, caller: &str) -> Option<(String, String, String)> {
    let acc = st.accounts.get(caller)?;
    Some((
        format!("{}@lid", acc.lid),
        format!("{caller}@s.whatsapp.net"),
        acc.push_name.clone(),
    ))
}

fn call_stanza(st: &mut State, from: &str, notify: &str, action: Node) -> NodeBuilder {
    let id = st.new_id();
    NodeBuilder::new("call")
        .attr("from", from)
        .attr("id", id)
        .attr("t", now_secs().to_string())
        .attr("notify", notify)
        .attr("platform", "android")
        .attr("version", "2.25.1.76")
        .attr("e", "0")
        .children([action])
}

/// Send every device of `callee` (not the phone) a stanza made by `make`: live to the ones
/// online, queued and marked `offline` for the others.
fn to_devices(st: &mut State, callee: &str, make: impl Fn(&mut State, bool) -> Node) {
    for device in st.device_ids(callee) {
        if device == 0 {
            continue;
        }
        let addr = DeviceAddr {
            phone: callee.to_string(),
            device,
        };
        let online = st.conn_of(&addr).is_some_and(|c| c.active);
        let node = make(st, !online);
        st.deliver(&addr, node);
    }
}

/// `caller` calls `callee`; the call id, or `None` when either account is unknown.
pub fn offer(st: &mut State, caller: &str, callee: &str, video: bool) -> Option<String> {
    let (lid, pn, notify) = caller_jids(st, caller)?;
    if !st.accounts.contains_key(callee) {
        return None;
    }
    let call_id = format!("{:016X}{:016X}", now_ms(), st.next_id);
    let id = call_id.clone();
    to_devices(st, callee, move |st, offline| {
        let mut media = vec![
            NodeBuilder::new("audio")
                .attr("enc", "opus")
                .attr("rate", "16000")
                .build(),
            NodeBuilder::new("audio")
                .attr("enc", "opus")
                .attr("rate", "8000")
                .build(),
        ];
        if video {
            media.push(
                NodeBuilder::new("video")
                    .attr("enc", "vp8")
                    .attr("dec", "vp8")
                    .attr("orientation", "0")
                    .attr("screen_width", "1080")
                    .attr("screen_height", "2400")
                    .attr("device_orientation", "0")
                    .build(),
            );
        }
        media.push(NodeBuilder::new("net").attr("medium", "3").build());
        media.push(NodeBuilder::new("encopt").attr("keygen", "2").build());
        let offer = NodeBuilder::new("offer")
            .attr("call-id", id.clone())
            .attr("call-creator", lid.clone())
            .attr("caller_pn", pn.clone())
            .attr("caller_country_code", "GB")
            .attr("device_class", "2016")
            .attr("joinable", "1")
            .children(media)
            .build();
        let mut call = call_stanza(st, &lid, &notify, offer);
        if offline {
            call = call.attr("offline", "0");
        }
        call.build()
    });
    Some(call_id)
}

/// The caller's side ends call `call_id` (`reason`: e.g. `timeout` when nobody answered).
pub fn terminate(st: &mut State, caller: &str, callee: &str, call_id: &str, reason: &str) -> bool {
    let Some((lid, _, notify)) = caller_jids(st, caller) else {
        return false;
    };
    to_devices(st, callee, |st, _| {
        let end = NodeBuilder::new("terminate")
            .attr("call-id", call_id)
            .attr("call-creator", lid.clone())
            .attr("reason", reason)
            .build();
        call_stanza(st, &lid, &notify, end).build()
    });
    true
}
