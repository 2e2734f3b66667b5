//! Asking a sender again for a message a crash left decrypted but never kept.
//!
//! whatsapp-rust writes a decrypted message's pending row only after the decrypt, and its
//! whole-cache Signal flush (a send's flush before the wire, or the 25 ms write-behind) can
//! save that decrypt's ratchet step first. A SIGKILL or power cut between the two leaves redb
//! past the message with no copy of it: WhatsApp hands it over again, it decrypts as an old
//! counter, and the library acknowledges it as a duplicate. The store backend notices
//! (neither a pending row nor a received record: [`Unrecovered`]); this task sends the sender
//! a retry receipt for it, as a device does for any message it cannot decrypt, and the
//! sender's phone encrypts it again on the current session. It then arrives as an ordinary
//! message, under the id it had.

use std::sync::Arc;

use tokio::sync::mpsc;
use wacore_binary::JidExt as _;
use wacore_binary::builder::NodeBuilder;
use whatsapp_rust::{Client, Jid, RetryRequestOptions, RetryRequestOutcome};

use super::EngineStats;
use crate::store::wa_backend::Unrecovered;

/// Ask for each unrecovered message the backend reports until its channel closes.
pub(crate) async fn run(
    session: Arc<str>,
    client: Arc<Client>,
    mut lost: mpsc::Receiver<Unrecovered>,
    stats: Arc<EngineStats>,
) {
    while let Some(m) = lost.recv().await {
        ask_again(&session, &client, &m, &stats).await;
    }
}

async fn ask_again(session: &str, client: &Arc<Client>, m: &Unrecovered, stats: &EngineStats) {
    let (Ok(chat), Ok(sender)) = (m.chat.parse::<Jid>(), m.sender.parse::<Jid>()) else {
        tracing::warn!(session, chat = %m.chat, sender = %m.sender, id = %m.id, "cannot name the sender of a lost message");
        return;
    };
    // Our own messages (sent from the phone) have no received record by design.
    if client
        .pn()
        .is_some_and(|pn| sender.matches_user_or_lid(&pn, client.lid().as_ref()))
    {
        return;
    }
    let stanza = message_stanza(&chat, &sender, &m.id, wacore::time::now_secs());
    match client
        .request_message_retry(&stanza.as_node_ref(), RetryRequestOptions::new())
        .await
    {
        Ok(RetryRequestOutcome::Sent { retry_count, .. }) => {
            EngineStats::bump(&stats.resend_requests);
            tracing::warn!(session, chat = %m.chat, sender = %m.sender, id = %m.id, retry_count, "asked the sender to send a lost message again");
        }
        Ok(other) => {
            tracing::warn!(session, id = %m.id, outcome = ?other, "a lost message was not asked for again");
        }
        Err(e) => {
            tracing::warn!(session, id = %m.id, error = %e, "cannot ask for a lost message again");
        }
    }
}

/// The `<message>` head a retry receipt is made from: who sent it in which chat, and its id.
fn message_stanza(chat: &Jid, sender: &Jid, id: &str, t: i64) -> wacore_binary::Node {
    let b = NodeBuilder::new("message")
        .attr("id", id)
        .attr("t", t.to_string())
        .attr("type", "text");
    if chat.is_group() || chat.is_broadcast_list() || chat.is_status_broadcast() {
        b.attr("from", chat).attr("participant", sender).build()
    } else {
        b.attr("from", sender).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(n: &wacore_binary::Node, k: &str) -> Option<String> {
        n.as_node_ref().get_attr(k).map(|v| v.as_str().to_string())
    }

    #[test]
    fn a_direct_message_names_the_sender_device_as_from() {
        let sender: Jid = "15550001:3@s.whatsapp.net".parse().unwrap();
        let chat: Jid = "15550001@s.whatsapp.net".parse().unwrap();
        let n = message_stanza(&chat, &sender, "ABC", 1_700_000_000);
        assert_eq!(
            attr(&n, "from").as_deref(),
            Some("15550001:3@s.whatsapp.net")
        );
        assert_eq!(attr(&n, "participant"), None);
        assert_eq!(attr(&n, "id").as_deref(), Some("ABC"));
        assert_eq!(attr(&n, "t").as_deref(), Some("1700000000"));
    }

    #[test]
    fn a_group_message_names_the_group_and_the_participant() {
        let sender: Jid = "15550001:3@s.whatsapp.net".parse().unwrap();
        let chat: Jid = "1203630@g.us".parse().unwrap();
        let n = message_stanza(&chat, &sender, "XYZ", 1);
        assert_eq!(attr(&n, "from").as_deref(), Some("1203630@g.us"));
        assert_eq!(
            attr(&n, "participant").as_deref(),
            Some("15550001:3@s.whatsapp.net")
        );
    }
}
