//! QR pairing and re-login against the mock with the real client.

use std::sync::Arc;
use std::time::Instant;

use crate::common::*;
use wa_mock::{Direction, StanzaFilter};
use wacore::store::InMemoryBackend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_pairing_then_restart_logs_in_without_qr() {
    let mock = mock().await;
    let backend = Arc::new(InMemoryBackend::new());

    let t0 = Instant::now();
    let mut c = start_client(&mock, backend.clone()).await;
    let qr = c.wait_qr().await;
    eprintln!("start -> QR: {}", elapsed(t0));
    let info = mock.scan(&qr).await.expect("scan");
    assert!(info.phone.starts_with("1555000"));
    assert_eq!(info.device, 1);
    c.wait_connected().await;
    eprintln!("start -> Connected (pairing): {}", elapsed(t0));
    assert!(mock.is_online(&info.addr()));
    c.stop().await;

    // Same store, new client instance: logs in with no QR.
    let t1 = Instant::now();
    let mut c2 = start_client(&mock, backend.clone()).await;
    c2.wait_connected().await;
    eprintln!("restart -> Connected: {}", elapsed(t1));
    let logins = mock.accounts()[0]
        .devices
        .iter()
        .find(|d| d.device == 1)
        .map(|d| d.logins);
    assert!(logins.is_some_and(|n| n >= 2), "logins: {logins:?}");

    // The client checks its key bundle against the server's digest at each login. The server
    // has the record, so nothing is uploaded again: one prekey upload in all, at the first
    // login. (A 404 here made every restart upload 812 more prekeys into the store.)
    let jid = format!("{}:{}@s.whatsapp.net", info.phone, info.device);
    let of_device = |dir| StanzaFilter {
        device: Some(jid.clone()),
        direction: Some(dir),
        ..Default::default()
    };
    mock.wait_until(STEP, "the digest answered", |m| {
        m.stanzas(&of_device(Direction::Out))
            .iter()
            .any(|s| s.xml.contains("<digest"))
    })
    .await
    .expect("a digest answer");
    let uploads = mock
        .stanzas(&of_device(Direction::In))
        .iter()
        .filter(|s| s.xml.contains("xmlns=\"encrypt\"") && s.xml.contains("<registration"))
        .count();
    assert_eq!(uploads, 1, "prekey uploads");
    c2.stop().await;
    mock.shutdown().await;
}

/// A number asked by phone number answers with its LID; asked by LID, with its phone number
/// as the user's `pn_jid` (never the LID mapped to itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usync_maps_phone_numbers_and_lids_both_ways() {
    use wacore::iq::usync::{IsOnWhatsAppQueryType, IsOnWhatsAppSpec, IsOnWhatsAppUser};
    use whatsapp_rust::Jid;

    let mock = mock().await;
    let (c, info) = paired_client(&mock, Arc::new(InMemoryBackend::new())).await;
    let other = mock.create_account().unwrap();
    let other_lid = mock
        .accounts()
        .into_iter()
        .find(|a| a.phone == other)
        .map(|a| a.lid)
        .unwrap();
    let ask = |jid: Jid, by: IsOnWhatsAppQueryType| {
        let spec = IsOnWhatsAppSpec::new(
            vec![IsOnWhatsAppUser {
                jid,
                known_lid: None,
            }],
            "sid-1",
            by,
        );
        c.client.execute(spec)
    };
    for (phone, lid) in [
        (info.phone.as_str(), info.lid.as_str()),
        (other.as_str(), other_lid.as_str()),
    ] {
        let by_pn = ask(Jid::pn(phone), IsOnWhatsAppQueryType::Pn)
            .await
            .unwrap();
        assert_eq!(by_pn.len(), 1);
        assert!(by_pn[0].is_registered);
        assert_eq!(
            by_pn[0].lid.as_ref().map(|j| j.user.to_string()),
            Some(lid.to_string())
        );
        let by_lid = ask(Jid::lid(lid), IsOnWhatsAppQueryType::Lid)
            .await
            .unwrap();
        assert_eq!(by_lid.len(), 1);
        assert_eq!(by_lid[0].lid, None, "a LID is not mapped to itself");
        assert_eq!(
            by_lid[0].pn_jid.as_ref().map(|j| j.user.to_string()),
            Some(phone.to_string())
        );
    }
    // A number nobody has is answered, as WhatsApp does: its JID with `type="out"` (a user
    // without a JID would be dropped by the client); a LID nobody has is left out.
    let nobody = ask(Jid::pn("15559990001"), IsOnWhatsAppQueryType::Pn)
        .await
        .unwrap();
    assert_eq!(nobody.len(), 1, "answered, not dropped");
    assert_eq!(nobody[0].jid.user.as_str(), "15559990001");
    assert!(!nobody[0].is_registered);
    assert_eq!(nobody[0].lid, None);
    let no_lid = ask(Jid::lid("999999999999"), IsOnWhatsAppQueryType::Lid)
        .await
        .unwrap();
    assert!(no_lid.is_empty(), "{no_lid:?}");
    c.stop().await;
    mock.shutdown().await;
}
