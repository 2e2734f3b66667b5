//! The whatsapp-rust storage backend on redb, checked against wacore's `InMemoryBackend`.
//!
//! Every check in [`checks`] is written once, generic over `Backend`, and records the answers
//! it gets in a [`Log`] (lists sorted, since the in-memory backend answers in HashMap order).
//! Each check runs twice, on `InMemoryBackend` and on `RedbBackend` (through an
//! `Arc<dyn Backend>`, the way the client holds it, on a real redb file whose neighbouring
//! sessions hold other data), and the two logs must be equal. The checks also assert the
//! answers they expect, so both backends agreeing on a wrong answer still fails.
//!
//! After them come the redb-only tests: reopening the file, session isolation,
//! `delete_session_keys`, corrupt rows, and the one deliberate difference from the in-memory
//! backend (LID remapping).

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, Backend, DeviceInfo, DeviceListRecord, DeviceStore,
    LidPnMappingEntry, MsgSecretEntry, MsgSecretStore, PendingInboundKey, PendingInboundRow,
    ProtocolStore, SignalStore, TcTokenEntry,
};
use wacore::store::{Device, InMemoryBackend};
use wagate::store::{Store, wa_backend};
use whatsapp_rust::bytes::Bytes;

/// The answers one backend gave, in call order.
#[derive(Default, Debug)]
struct Log(Vec<String>);

impl Log {
    fn rec(&mut self, label: &str, value: impl Debug) {
        self.0.push(format!("{label}: {value:?}"));
    }

    /// Record a list as a set: its sorted Debug forms.
    fn set<T: Debug>(&mut self, label: &str, items: impl IntoIterator<Item = T>) {
        let mut items: Vec<String> = items.into_iter().map(|i| format!("{i:?}")).collect();
        items.sort();
        self.0.push(format!("{label}: {items:?}"));
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn open(path: &Path) -> Store {
    Store::open(&path.join("wagate.redb"), 1 << 20).expect("open store")
}

fn now() -> i64 {
    wacore::time::now_secs()
}

// Addresses shared by the checks and by the neighbouring sessions' data.
const ALICE: &str = "alice@s.whatsapp.net";
const ALICE_3: &str = "alice:3@s.whatsapp.net";
const ALICEX: &str = "alicex@s.whatsapp.net";
const BOB: &str = "bob@lid";
const GROUP: &str = "120363000000000001@g.us";
/// A group id that [`GROUP`] is a prefix of.
const GROUP_10: &str = "120363000000000001@g.us.x";

fn lid_entry(lid: &str, pn: &str, at: i64) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: lid.into(),
        phone_number: pn.into(),
        created_at: at,
        updated_at: at + 1,
        learning_source: "usync".into(),
    }
}

fn device_list(user: &str, devices: &[u32], ts: i64) -> DeviceListRecord {
    DeviceListRecord {
        user: user.into(),
        devices: devices
            .iter()
            .map(|&d| DeviceInfo::new(d, Some(d + 1)).with_hosting(d == 2))
            .collect(),
        timestamp: ts,
        phash: Some(format!("2:{ts}")),
        raw_id: Some(7),
    }
}

fn secret_entry(
    chat: &str,
    sender: &str,
    id: &str,
    fill: u8,
    expires_at: i64,
    message_ts: i64,
) -> MsgSecretEntry {
    MsgSecretEntry {
        chat: chat.into(),
        sender: sender.into(),
        msg_id: id.into(),
        secret: [fill; 32],
        expires_at,
        message_ts,
    }
}

/// A HashState whose Debug form is deterministic (at most one map entry).
fn hash_state(version: u64, fill: u8) -> HashState {
    let mut state = HashState {
        version,
        hash: [fill; 128],
        ..HashState::default()
    };
    state
        .index_value_map
        .insert(format!("idx{fill}"), vec![fill; 32]);
    state
}

/// Write something into every table of a session, with values derived from `v`.
async fn populate<B: Backend + ?Sized>(b: &B, v: u8) {
    let bytes = |n: u8| vec![v, n];
    b.put_identity(ALICE, [v; 32]).await.unwrap();
    b.put_session(ALICE_3, &bytes(1)).await.unwrap();
    b.store_prekey(5, &bytes(2), false).await.unwrap();
    b.store_signed_prekey(1, &bytes(3)).await.unwrap();
    b.put_sender_key(GROUP, &bytes(4)).await.unwrap();
    b.set_sync_key(
        b"key",
        AppStateSyncKey {
            key_data: bytes(5),
            fingerprint: bytes(6),
            timestamp: i64::from(v),
        },
    )
    .await
    .unwrap();
    b.set_version("regular", hash_state(u64::from(v), v))
        .await
        .unwrap();
    b.put_mutation_macs(
        "regular",
        1,
        &[AppStateMutationMAC {
            index_mac: vec![1; 32],
            value_mac: bytes(7),
        }],
    )
    .await
    .unwrap();
    b.set_sender_key_status(GROUP, &[(ALICE_3, v.is_multiple_of(2))])
        .await
        .unwrap();
    b.put_lid_mapping(&lid_entry("100", &format!("555{v}"), i64::from(v)))
        .await
        .unwrap();
    b.save_base_key(ALICE, "m1", &bytes(8)).await.unwrap();
    b.update_device_list(device_list("alice", &[0, u32::from(v)], i64::from(v)))
        .await
        .unwrap();
    b.put_group_metadata(GROUP, &bytes(9)).await.unwrap();
    b.put_tc_token(
        BOB,
        &TcTokenEntry {
            token: bytes(10),
            token_timestamp: i64::from(v),
            sender_timestamp: Some(i64::from(v) + 1),
        },
    )
    .await
    .unwrap();
    b.store_sent_message(GROUP, "sent1", &bytes(11))
        .await
        .unwrap();
    b.store_pending_inbound(GROUP, ALICE, "in1", &bytes(12))
        .await
        .unwrap();
    b.put_msg_secrets(vec![secret_entry(
        GROUP,
        ALICE,
        "m1",
        v,
        now() + 3600,
        i64::from(v),
    )])
    .await
    .unwrap();
    let mut device = Device::new();
    device.push_name = format!("device {v}");
    b.save(&device).await.unwrap();
}

/// Read back (through the trait, non-destructively except for the sent message) what
/// [`populate`] wrote.
async fn read_back<B: Backend + ?Sized>(b: &B, v: u8) -> Log {
    let mut log = Log::default();
    log.rec("identity", b.load_identity(ALICE).await.unwrap());
    log.rec("session", b.get_session(ALICE_3).await.unwrap());
    log.rec("prekey", b.load_prekey(5).await.unwrap());
    log.rec("max prekey", b.get_max_prekey_id().await.unwrap());
    log.rec("signed", b.load_all_signed_prekeys().await.unwrap());
    log.rec("sender key", b.get_sender_key(GROUP).await.unwrap());
    log.rec("sync key", b.get_sync_key(b"key").await.unwrap());
    log.rec("latest sync key", b.get_latest_sync_key_id().await.unwrap());
    log.rec("version", b.get_version("regular").await.unwrap());
    log.rec(
        "mac",
        b.get_mutation_mac("regular", &[1; 32]).await.unwrap(),
    );
    log.set("skdm", b.get_sender_key_devices(GROUP).await.unwrap());
    log.set("lids", b.get_all_lid_mappings().await.unwrap());
    log.rec(
        "base key",
        b.has_same_base_key(ALICE, "m1", &[v, 8]).await.unwrap(),
    );
    log.rec("devices", b.get_devices("alice").await.unwrap());
    log.rec("group", b.get_group_metadata(GROUP).await.unwrap());
    log.rec("tc", b.get_tc_token(BOB).await.unwrap());
    log.rec(
        "pending",
        b.get_pending_inbound(GROUP, ALICE, "in1").await.unwrap(),
    );
    log.rec(
        "secret",
        b.get_msg_secret_with_ts(GROUP, ALICE, "m1").await.unwrap(),
    );
    log.rec(
        "device",
        b.load().await.unwrap().map(|d| d.push_name.clone()),
    );
    log.rec("sent", b.take_sent_message(GROUP, "sent1").await.unwrap());
    log
}

mod checks {
    use super::*;

    pub async fn identities<B: Backend + ?Sized>(b: &B, log: &mut Log) {
        log.rec("missing", b.load_identity(ALICE).await.unwrap());
        b.put_identity(ALICE, [1; 32]).await.unwrap();
        let got = b.load_identity(ALICE).await.unwrap();
        assert_eq!(got, Some([1; 32]));
        log.rec("put", got);
        b.put_identities_batch(&[
            (Arc::from(ALICE), [2; 32]),
            (Arc::from(ALICE_3), [3; 32]),
            (Arc::from(BOB), [4; 32]),
        ])
        .await
        .unwrap();
        b.put_identities_batch(&[]).await.unwrap();
        for addr in [ALICE, ALICE_3, BOB] {
            log.rec(addr, b.load_identity(addr).await.unwrap());
        }
        assert_eq!(b.load_identity(ALICE).await.unwrap(), Some([2; 32]));
        b.delete_identity(ALICE_3).await.unwrap();
        b.delete_identity("never@s.whatsapp.net").await.unwrap();
        let gone = b.load_identity(ALICE_3).await.unwrap();
        assert_eq!(gone, None);
        log.rec("deleted", gone);
    }

    pub async fn sessions<B: Backend + ?Sized>(b: &B, log: &mut Log) {
        log.rec("missing", b.get_session(ALICE).await.unwrap());
        log.rec("has missing", b.has_session(ALICE).await.unwrap());
        log.rec(
            "state before",
            b.has_signal_state_for_user("alice").await.unwrap(),
        );
        b.put_session(ALICE_3, b"s1").await.unwrap();
        assert_eq!(
            b.get_session(ALICE_3).await.unwrap(),
            Some(Bytes::from_static(b"s1"))
        );
        log.rec("get", b.get_session(ALICE_3).await.unwrap());
        log.rec("has", b.has_session(ALICE_3).await.unwrap());
        b.put_sessions_batch(&[
            (Arc::from(ALICE_3), Bytes::from_static(b"s2")),
            (Arc::from(ALICEX), Bytes::from_static(b"x")),
        ])
        .await
        .unwrap();
        b.put_sessions_batch(&[]).await.unwrap();
        log.rec("batch update", b.get_session(ALICE_3).await.unwrap());
        log.rec("batch insert", b.get_session(ALICEX).await.unwrap());
        for user in ["alice", "alicex", "ali", "alicexy", "bob", "carol"] {
            log.rec(user, b.has_signal_state_for_user(user).await.unwrap());
        }
        assert!(b.has_signal_state_for_user("alice").await.unwrap());
        assert!(!b.has_signal_state_for_user("ali").await.unwrap());
        // An identity alone counts too.
        b.put_identity("carol@lid", [9; 32]).await.unwrap();
        assert!(b.has_signal_state_for_user("carol").await.unwrap());
        log.rec("carol", b.has_signal_state_for_user("carol").await.unwrap());
        b.delete_session(ALICE_3).await.unwrap();
        log.rec("deleted", b.get_session(ALICE_3).await.unwrap());
        log.rec("has deleted", b.has_session(ALICE_3).await.unwrap());
        log.rec(
            "alice after delete",
            b.has_signal_state_for_user("alice").await.unwrap(),
        );
    }

    pub async fn prekeys<B: Backend + ?Sized>(b: &B, log: &mut Log) {
        log.rec("max empty", b.get_max_prekey_id().await.unwrap());
        log.rec("missing", b.load_prekey(1).await.unwrap());
        b.store_prekey(1, b"p1", false).await.unwrap();
        b.store_prekeys_batch(
            &[
                (2, Bytes::from_static(b"p2")),
                (300, Bytes::from_static(b"p300")),
                (1, Bytes::from_static(b"p1b")),
            ],
            true,
        )
        .await
        .unwrap();
        b.store_prekeys_batch(&[], false).await.unwrap();
        log.rec("load 1", b.load_prekey(1).await.unwrap());
        let batch = b.load_prekeys_batch(&[300, 4, 1, 2]).await.unwrap();
        assert_eq!(
            batch.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![300, 1, 2]
        );
        log.rec("batch", batch);
        log.rec("batch empty", b.load_prekeys_batch(&[]).await.unwrap());
        let max = b.get_max_prekey_id().await.unwrap();
        assert_eq!(max, 300);
        log.rec("max", max);
        b.remove_prekey(300).await.unwrap();
        // Marking a removed key uploaded must not resurrect it.
        b.mark_prekeys_uploaded(&[1, 300, 77]).await.unwrap();
        b.mark_prekeys_uploaded(&[]).await.unwrap();
        let removed = b.load_prekey(300).await.unwrap();
        assert_eq!(removed, None);
        log.rec("removed", removed);
        log.rec("still 1", b.load_prekey(1).await.unwrap());
        log.rec("max after remove", b.get_max_prekey_id().await.unwrap());
    }

    pub async fn signed_prekeys<B: Backend + ?Sized>(b: &B, log: &mut Log) {
        log.rec("all empty", b.load_all_signed_prekeys().await.unwrap());
        b.store_signed_prekey(1, b"a").await.unwrap();
        b.store_signed_prekey(2, b"b").await.unwrap();
        b.store_signed_prekey(1, b"c").await.unwrap();
        log.rec("get 1", b.load_signed_prekey(1).await.unwrap());
        log.rec("get 3", b.load_signed_prekey(3).await.unwrap());
        let all = sorted(b.load_all_signed_prekeys().await.unwrap());
        assert_eq!(all, vec![(1, b"c".to_vec()), (2, b"b".to_vec())]);
        log.rec("all", all);
        b.remove_signed_prekey(1).await.unwrap();
        log.rec(
            "after remove",
            sorted(b.load_all_signed_prekeys().await.unwrap()),
        );
    }

    pub async fn sender_keys<B: Backend + ?Sized>(b: &B, log: &mut Log) {
        let addr = format!("{GROUP}::{ALICE_3}");
        log.rec("missing", b.get_sender_key(&addr).await.unwrap());
        b.put_sender_key(&addr, b"k1").await.unwrap();
        log.rec("get", b.get_sender_key(&addr).await.unwrap());
        b.put_sender_keys_batch(&[
            (Arc::from(addr.as_str()), Bytes::from_static(b"k2")),
            (Arc::from("other"), Bytes::from_static(b"o")),
        ])
        .await
        .unwrap();
        b.put_sender_keys_batch(&[]).await.unwrap();
        assert_eq!(b.get_sender_key(&addr).await.unwrap(), Some(b"k2".to_vec()));
        log.rec("batch", b.get_sender_key(&addr).await.unwrap());
        log.rec("other", b.get_sender_key("other").await.unwrap());
        b.delete_sender_key(&addr).await.unwrap();
        log.rec("deleted", b.get_sender_key(&addr).await.unwrap());
    }

    pub async fn app_sync<B: Backend + ?Sized>(b: &B, log: &mut Log) {
        log.rec("latest none", b.get_latest_sync_key_id().await.unwrap());
        log.rec("key missing", b.get_sync_key(b"k2").await.unwrap());
        for id in [&b"k2"[..], b"k1"] {
            b.set_sync_key(
                id,
                AppStateSyncKey {
                    key_data: id.to_vec(),
                    fingerprint: vec![1, 2],
                    timestamp: 42,
                },
            )
            .await
            .unwrap();
        }
        // The latest is the last one set, not the largest id.
        let latest = b.get_latest_sync_key_id().await.unwrap();
        assert_eq!(latest, Some(b"k1".to_vec()));
        log.rec("latest", latest);
        log.rec("key", b.get_sync_key(b"k2").await.unwrap());

        log.rec("version default", b.get_version("regular").await.unwrap());
        b.set_version("regular", hash_state(3, 9)).await.unwrap();
        b.set_version("regular_high", hash_state(4, 8))
            .await
            .unwrap();
        let v = b.get_version("regular").await.unwrap();
        assert_eq!(v.version, 3);
        log.rec("version", v);

        let mac = |i: u8, v: u8| AppStateMutationMAC {
            index_mac: vec![i; 32],
            value_mac: vec![v; 32],
        };
        b.put_mutation_macs("regular", 1, &[mac(1, 10), mac(2, 20)])
            .await
            .unwrap();
        b.put_mutation_macs("regular", 2, &[mac(2, 21)])
            .await
            .unwrap();
        b.put_mutation_macs("regular_high", 1, &[mac(1, 30)])
            .await
            .unwrap();
        b.put_mutation_macs("regular", 3, &[]).await.unwrap();
        log.rec(
            "mac 2",
            b.get_mutation_mac("regular", &[2; 32]).await.unwrap(),
        );
        log.rec(
            "mac missing",
            b.get_mutation_mac("regular", &[3; 32]).await.unwrap(),
        );
        let many = b
            .get_mutation_macs("regular", &[[1; 32], [2; 32], [3; 32]])
            .await
            .unwrap();
        assert_eq!(many.len(), 2);
        log.set("macs", many);
        log.set(
            "macs empty",
            b.get_mutation_macs("regular", &[]).await.unwrap(),
        );
        b.delete_mutation_macs("regular", &[vec![1; 32], vec![9; 32]])
            .await
            .unwrap();
        b.delete_mutation_macs("regular", &[]).await.unwrap();
        log.rec(
            "deleted",
            b.get_mutation_mac("regular", &[1; 32]).await.unwrap(),
        );
        // Clearing one collection leaves the one whose name it prefixes.
        b.clear_mutation_macs("regular").await.unwrap();
        log.rec(
            "cleared",
            b.get_mutation_mac("regular", &[2; 32]).await.unwrap(),
        );
        let high = b.get_mutation_mac("regular_high", &[1; 32]).await.unwrap();
        assert_eq!(high, Some(vec![30; 32]));
        log.rec("other collection", high);
    }

    pub async fn sender_key_devices<B: Backend + ?Sized>(b: &B, log: &mut Log) {
        log.rec("empty", b.get_sender_key_devices(GROUP).await.unwrap());
        b.set_sender_key_status(GROUP, &[("d1", true), ("d2", false), ("d3", true)])
            .await
            .unwrap();
        b.set_sender_key_status(GROUP, &[("d2", true)])
            .await
            .unwrap();
        b.set_sender_key_status(GROUP_10, &[("d1", false), ("d4", true)])
            .await
            .unwrap();
        b.set_sender_key_status("g3", &[("d1", true)])
            .await
            .unwrap();
        b.set_sender_key_status(GROUP, &[]).await.unwrap();
        let devs = sorted(b.get_sender_key_devices(GROUP).await.unwrap());
        assert_eq!(
            devs,
            vec![
                ("d1".into(), true),
                ("d2".into(), true),
                ("d3".into(), true)
            ]
        );
        log.rec("group", devs);
        log.rec(
            "group 10",
            sorted(b.get_sender_key_devices(GROUP_10).await.unwrap()),
        );
        b.delete_sender_key_device_rows(&["d1", "d9"])
            .await
            .unwrap();
        b.delete_sender_key_device_rows(&[]).await.unwrap();
        for g in [GROUP, GROUP_10, "g3"] {
            log.rec(g, sorted(b.get_sender_key_devices(g).await.unwrap()));
        }
        b.clear_sender_key_devices(GROUP).await.unwrap();
        log.rec("cleared", b.get_sender_key_devices(GROUP).await.unwrap());
        let kept = sorted(b.get_sender_key_devices(GROUP_10).await.unwrap());
        assert_eq!(kept, vec![("d4".into(), true)]);
        log.rec("prefixed group kept", kept);
        b.clear_all_sender_key_devices().await.unwrap();
        log.rec(
            "all cleared",
            b.get_sender_key_devices(GROUP_10).await.unwrap(),
        );
    }

    pub async fn lid_mappings<B: Backend + ?Sized>(b: &B, log: &mut Log) {
        log.rec("lid missing", b.get_lid_mapping("100").await.unwrap());
        log.rec("pn missing", b.get_pn_mapping("5551").await.unwrap());
        log.set("all empty", b.get_all_lid_mappings().await.unwrap());
        b.put_lid_mapping(&lid_entry("100", "5551", 10))
            .await
            .unwrap();
        b.put_lid_mappings(&[lid_entry("200", "5552", 20), lid_entry("300", "5553", 30)])
            .await
            .unwrap();
        b.put_lid_mappings(&[]).await.unwrap();
        log.rec("lid", b.get_lid_mapping("100").await.unwrap());
        let by_pn = b.get_pn_mapping("5552").await.unwrap();
        assert_eq!(by_pn.as_ref().map(|e| e.lid.as_str()), Some("200"));
        log.rec("pn", by_pn);
        // The LID moves to a new phone number: the old number no longer resolves.
        b.put_lid_mapping(&lid_entry("100", "5559", 40))
            .await
            .unwrap();
        let old = b.get_pn_mapping("5551").await.unwrap();
        assert!(old.is_none());
        log.rec("old pn", old);
        log.rec("new pn", b.get_pn_mapping("5559").await.unwrap());
        // Same number, same LID, newer timestamps: an update.
        b.put_lid_mapping(&lid_entry("300", "5553", 50))
            .await
            .unwrap();
        log.rec("updated", b.get_lid_mapping("300").await.unwrap());
        let all = b.get_all_lid_mappings().await.unwrap();
        assert_eq!(all.len(), 3);
        log.set("all", all);
    }

    pub async fn base_keys<B: Backend + ?Sized>(b: &B, log: &mut Log) {
        log.rec(
            "missing",
            b.has_same_base_key(ALICE, "m1", b"k").await.unwrap(),
        );
        b.save_base_key(ALICE, "m1", b"k").await.unwrap();
        b.save_base_key(ALICE, "m2", b"other").await.unwrap();
        let same = b.has_same_base_key(ALICE, "m1", b"k").await.unwrap();
        assert!(same);
        log.rec("same", same);
        log.rec(
            "different",
            b.has_same_base_key(ALICE, "m1", b"k2").await.unwrap(),
        );
        log.rec(
            "other message",
            b.has_same_base_key(ALICE, "m3", b"k").await.unwrap(),
        );
        log.rec(
            "other address",
            b.has_same_base_key(BOB, "m1", b"k").await.unwrap(),
        );
        b.delete_base_key(ALICE, "m1").await.unwrap();
        log.rec(
            "deleted",
            b.has_same_base_key(ALICE, "m1", b"k").await.unwrap(),
        );
        log.rec(
            "m2 kept",
            b.has_same_base_key(ALICE, "m2", b"other").await.unwrap(),
        );
    }

    pub async fn device_lists<B: Backend + ?Sized>(b: &B, log: &mut Log) {
        log.rec("missing", b.get_devices("alice").await.unwrap());
        b.update_device_list(device_list("alice", &[0, 1], 100))
            .await
            .unwrap();
        log.rec("get", b.get_devices("alice").await.unwrap());
        b.update_device_lists(vec![
            device_list("alice", &[0, 2, 5], 200),
            device_list("bob", &[0], 300),
        ])
        .await
        .unwrap();
        b.update_device_lists(Vec::new()).await.unwrap();
        let alice = b.get_devices("alice").await.unwrap();
        assert_eq!(alice.as_ref().map(|r| r.devices.len()), Some(3));
        log.rec("replaced", alice);
        log.rec("bob", b.get_devices("bob").await.unwrap());
        b.delete_devices("alice").await.unwrap();
        log.rec("deleted", b.get_devices("alice").await.unwrap());
    }

    pub async fn group_metadata<B: Backend + ?Sized>(b: &B, log: &mut Log) {
        log.rec("missing", b.get_group_metadata(GROUP).await.unwrap());
        b.put_group_metadata(GROUP, b"v1").await.unwrap();
        b.put_group_metadata(GROUP, b"v2").await.unwrap();
        let got = b.get_group_metadata(GROUP).await.unwrap();
        assert_eq!(got.as_deref(), Some(&b"v2"[..]));
        log.rec("get", got);
        b.delete_group_metadata(GROUP).await.unwrap();
        log.rec("deleted", b.get_group_metadata(GROUP).await.unwrap());
    }

    pub async fn tc_tokens<B: Backend + ?Sized>(b: &B, log: &mut Log) {
        log.rec("missing", b.get_tc_token("u1").await.unwrap());
        log.set("jids empty", b.get_all_tc_token_jids().await.unwrap());
        let entry = TcTokenEntry {
            token: vec![1, 2],
            token_timestamp: 100,
            sender_timestamp: None,
        };
        b.put_tc_token("u1", &entry).await.unwrap();
        log.rec("get", b.get_tc_token("u1").await.unwrap());
        b.delete_tc_token("u1").await.unwrap();
        log.rec("deleted", b.get_tc_token("u1").await.unwrap());

        // touch: placeholder, then only forward, never clobbering a real token.
        b.touch_tc_token_sender_timestamp("t", 1000).await.unwrap();
        log.rec("placeholder", b.get_tc_token("t").await.unwrap());
        b.put_tc_token(
            "t",
            &TcTokenEntry {
                token: vec![7, 8, 9],
                token_timestamp: 2000,
                sender_timestamp: None,
            },
        )
        .await
        .unwrap();
        b.touch_tc_token_sender_timestamp("t", 3000).await.unwrap();
        b.touch_tc_token_sender_timestamp("t", 2500).await.unwrap();
        let t = b.get_tc_token("t").await.unwrap().unwrap();
        assert_eq!(
            (t.token.clone(), t.token_timestamp, t.sender_timestamp),
            (vec![7, 8, 9], 2000, Some(3000))
        );
        log.rec("touched", t);

        // store_received: keeps the sender bucket, newer wins, placeholder never blocks.
        b.touch_tc_token_sender_timestamp("r", 5000).await.unwrap();
        b.store_received_tc_token("r", &[1, 2, 3], 4000)
            .await
            .unwrap();
        log.rec(
            "received over placeholder",
            b.get_tc_token("r").await.unwrap(),
        );
        b.store_received_tc_token("r", &[2, 2, 2], 3000)
            .await
            .unwrap();
        log.rec("stale ignored", b.get_tc_token("r").await.unwrap());
        b.store_received_tc_token("r", &[3, 3, 3], 4000)
            .await
            .unwrap();
        log.rec("equal wins", b.get_tc_token("r").await.unwrap());
        b.store_received_tc_token("fresh", &[9], 4000)
            .await
            .unwrap();
        let fresh = b.get_tc_token("fresh").await.unwrap().unwrap();
        assert_eq!(fresh.sender_timestamp, None);
        log.rec("fresh", fresh);

        // Expiry: token_cutoff 1000, sender_cutoff 2000.
        b.touch_tc_token_sender_timestamp("recent_ph", 2500)
            .await
            .unwrap();
        b.touch_tc_token_sender_timestamp("stale_ph", 100)
            .await
            .unwrap();
        let put = |token: Vec<u8>, ts: i64, sender: Option<i64>| TcTokenEntry {
            token,
            token_timestamp: ts,
            sender_timestamp: sender,
        };
        b.put_tc_token("live_sender", &put(vec![1], 1, Some(2500)))
            .await
            .unwrap();
        b.put_tc_token("orphan", &put(vec![2], 1, None))
            .await
            .unwrap();
        b.put_tc_token("at_cutoff", &put(vec![3], 1000, None))
            .await
            .unwrap();
        b.put_tc_token("empty_new", &put(Vec::new(), 5000, Some(1999)))
            .await
            .unwrap();
        log.set("jids", b.get_all_tc_token_jids().await.unwrap());
        let removed = b.delete_expired_tc_tokens(1000, 2000).await.unwrap();
        assert_eq!(removed, 3, "stale_ph, orphan, empty_new");
        log.rec("removed", removed);
        log.set("jids after", b.get_all_tc_token_jids().await.unwrap());
    }

    pub async fn sent_messages<B: Backend + ?Sized>(b: &B, log: &mut Log) {
        log.rec(
            "take missing",
            b.take_sent_message(GROUP, "m1").await.unwrap(),
        );
        b.store_sent_message(GROUP, "m1", b"p1").await.unwrap();
        b.store_sent_message(GROUP, "m2", b"p2").await.unwrap();
        b.store_sent_message(ALICE, "m1", b"a1").await.unwrap();
        b.store_sent_message(GROUP, "m2", b"p2b").await.unwrap();
        let taken = b.take_sent_message(GROUP, "m1").await.unwrap();
        assert_eq!(taken, Some(b"p1".to_vec()));
        log.rec("take", taken);
        log.rec(
            "take twice",
            b.take_sent_message(GROUP, "m1").await.unwrap(),
        );
        let kept = b.delete_expired_sent_messages(now() - 3600).await.unwrap();
        assert_eq!(kept, 0);
        log.rec("nothing expired", kept);
        log.rec(
            "overwritten",
            b.take_sent_message(GROUP, "m2").await.unwrap(),
        );
        b.store_sent_message(GROUP, "m3", b"p3").await.unwrap();
        let removed = b.delete_expired_sent_messages(now() + 3600).await.unwrap();
        assert_eq!(removed, 2);
        log.rec("expired", removed);
        log.rec("gone", b.take_sent_message(ALICE, "m1").await.unwrap());
        log.rec(
            "sweep empty",
            b.delete_expired_sent_messages(i64::MAX).await.unwrap(),
        );
    }

    pub async fn pending_inbound<B: Backend + ?Sized>(b: &B, log: &mut Log) {
        log.rec(
            "missing",
            b.get_pending_inbound(GROUP, ALICE, "i1").await.unwrap(),
        );
        b.store_pending_inbound(GROUP, ALICE, "i1", b"m1")
            .await
            .unwrap();
        b.store_pending_inbound(GROUP, BOB, "i1", b"m1-bob")
            .await
            .unwrap();
        b.store_pending_inbound(GROUP, ALICE, "i1", b"m1b")
            .await
            .unwrap();
        let got = b.get_pending_inbound(GROUP, ALICE, "i1").await.unwrap();
        assert_eq!(got, Some(b"m1b".to_vec()));
        log.rec("get", got);
        log.rec(
            "other sender",
            b.get_pending_inbound(GROUP, BOB, "i1").await.unwrap(),
        );
        b.delete_pending_inbound(GROUP, ALICE, "i1").await.unwrap();
        b.delete_pending_inbound(GROUP, ALICE, "nope")
            .await
            .unwrap();
        log.rec(
            "deleted",
            b.get_pending_inbound(GROUP, ALICE, "i1").await.unwrap(),
        );
        b.store_pending_inbound_batch(&[
            PendingInboundRow {
                chat: ALICE,
                sender: ALICE,
                id: "b1",
                message: b"x1",
            },
            PendingInboundRow {
                chat: ALICE,
                sender: ALICE,
                id: "b2",
                message: b"x2",
            },
            PendingInboundRow {
                chat: ALICE,
                sender: ALICE,
                id: "b3",
                message: b"x3",
            },
        ])
        .await
        .unwrap();
        b.store_pending_inbound_batch(&[]).await.unwrap();
        for id in ["b1", "b2", "b3"] {
            log.rec(id, b.get_pending_inbound(ALICE, ALICE, id).await.unwrap());
        }
        b.delete_pending_inbound_batch(&[
            PendingInboundKey {
                chat: ALICE,
                sender: ALICE,
                id: "b1",
            },
            PendingInboundKey {
                chat: ALICE,
                sender: ALICE,
                id: "b2",
            },
        ])
        .await
        .unwrap();
        b.delete_pending_inbound_batch(&[]).await.unwrap();
        log.rec(
            "batch deleted",
            b.get_pending_inbound(ALICE, ALICE, "b1").await.unwrap(),
        );
        log.rec(
            "b3 kept",
            b.get_pending_inbound(ALICE, ALICE, "b3").await.unwrap(),
        );
        let none = b
            .delete_expired_pending_inbound(now() - 3600)
            .await
            .unwrap();
        assert_eq!(none, 0);
        log.rec("nothing expired", none);
        let removed = b
            .delete_expired_pending_inbound(now() + 3600)
            .await
            .unwrap();
        assert_eq!(removed, 2, "bob's i1 and b3");
        log.rec("expired", removed);
        log.rec(
            "gone",
            b.get_pending_inbound(ALICE, ALICE, "b3").await.unwrap(),
        );
    }

    pub async fn msg_secrets<B: Backend + ?Sized>(b: &B, log: &mut Log) {
        log.rec(
            "missing",
            b.get_msg_secret(GROUP, ALICE, "M").await.unwrap(),
        );
        b.put_msg_secret(GROUP, ALICE, "M", &[1; 32]).await.unwrap();
        log.rec("get", b.get_msg_secret(GROUP, ALICE, "M").await.unwrap());
        log.rec(
            "with ts",
            b.get_msg_secret_with_ts(GROUP, ALICE, "M").await.unwrap(),
        );
        // Keyed by all three columns.
        b.put_msg_secret(GROUP, BOB, "M", &[2; 32]).await.unwrap();
        b.put_msg_secret(ALICE, ALICE, "M", &[3; 32]).await.unwrap();
        log.rec(
            "by sender",
            b.get_msg_secret(GROUP, BOB, "M").await.unwrap(),
        );
        log.rec(
            "by chat",
            b.get_msg_secret(ALICE, ALICE, "M").await.unwrap(),
        );

        let stored = b
            .put_msg_secrets(vec![
                secret_entry(GROUP, ALICE, "E1", 4, 100, 50),
                secret_entry(GROUP, ALICE, "E2", 5, 200, 0),
                secret_entry(GROUP, ALICE, "E3", 6, 300, 70),
                // Duplicate in the same batch: merged, and still counted.
                secret_entry(GROUP, ALICE, "E1", 7, 150, 0),
            ])
            .await
            .unwrap();
        assert_eq!(stored, 4);
        log.rec("stored", stored);
        log.rec("empty batch", b.put_msg_secrets(Vec::new()).await.unwrap());
        let e1 = b.get_msg_secret_with_ts(GROUP, ALICE, "E1").await.unwrap();
        assert_eq!(e1, Some((vec![7; 32], 50)), "secret replaced, ts kept");
        log.rec("E1", e1);
        // Merges: a later deadline wins; 0 (never) wins over any deadline; the later
        // non-zero message_ts wins.
        b.put_msg_secrets(vec![
            secret_entry(GROUP, ALICE, "E2", 8, 100, 90),
            secret_entry(GROUP, ALICE, "E3", 9, 0, 60),
            // "M" has no deadline; a deadline never shortens "never".
            secret_entry(GROUP, ALICE, "M", 1, 120, 0),
        ])
        .await
        .unwrap();
        log.rec(
            "E2",
            b.get_msg_secret_with_ts(GROUP, ALICE, "E2").await.unwrap(),
        );
        log.rec(
            "E3",
            b.get_msg_secret_with_ts(GROUP, ALICE, "E3").await.unwrap(),
        );
        // Deadlines now: E1 150, E2 200, E3 never, M never. The cutoff is inclusive.
        let removed = b.delete_expired_msg_secrets(150).await.unwrap();
        assert_eq!(removed, 1);
        log.rec("removed at 150", removed);
        log.rec(
            "E1 gone",
            b.get_msg_secret(GROUP, ALICE, "E1").await.unwrap(),
        );
        log.rec(
            "E2 kept",
            b.get_msg_secret(GROUP, ALICE, "E2").await.unwrap(),
        );
        let removed = b.delete_expired_msg_secrets(i64::MAX).await.unwrap();
        assert_eq!(removed, 1);
        log.rec("removed at max", removed);
        log.rec(
            "never kept",
            b.get_msg_secret_with_ts(GROUP, ALICE, "E3").await.unwrap(),
        );
        log.rec("M kept", b.get_msg_secret(GROUP, ALICE, "M").await.unwrap());
    }

    pub async fn device<B: Backend + ?Sized>(b: &B, log: &mut Log) {
        let json = |d: &Device| serde_json::to_value(d).unwrap();
        log.rec("exists before", b.exists().await.unwrap());
        log.rec("load before", b.load().await.unwrap().is_none());
        let id = b.create().await.unwrap();
        assert_eq!(id, 1);
        log.rec("create", id);
        log.rec("exists after create", b.exists().await.unwrap());
        let created = b
            .load()
            .await
            .unwrap()
            .expect("create materializes a device");
        // A second create keeps the device (same keys) and hands out the next id.
        log.rec("create again", b.create().await.unwrap());
        let again = b.load().await.unwrap().expect("device");
        assert_eq!(json(&created), json(&again));

        let mut device = Device::new();
        device.push_name = "gateway".into();
        device.registration_id = 4242;
        device.login_counter = 3;
        device.edge_routing_info = Some(vec![1, 2, 3]);
        b.save(&device).await.unwrap();
        let loaded = b.load().await.unwrap().expect("saved device");
        assert_eq!(json(&loaded), json(&device));
        log.rec("saved", (loaded.push_name.clone(), loaded.registration_id));
        log.rec("exists after save", b.exists().await.unwrap());
        b.snapshot_db("test", Some(b"x")).await.unwrap();
        log.rec("resource report", b.resource_report().await);
    }
}

/// One test per check: the same answers from the in-memory and the redb backend.
macro_rules! same_answers {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            let memory = InMemoryBackend::new();
            let mut expected = Log::default();
            checks::$name(&memory, &mut expected).await;

            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path());
            // Neighbours, one whose id the session's prefixes, one that prefixes it, holding
            // other values under the same keys: they must not change any answer.
            populate(&store.backend("s"), 1).await;
            populate(&store.backend("s10"), 2).await;
            let redb: Arc<dyn Backend> = Arc::new(store.backend("s1"));
            let mut got = Log::default();
            checks::$name(&*redb, &mut got).await;

            assert_eq!(expected.0, got.0);
        }
    )*};
}

same_answers!(
    identities,
    sessions,
    prekeys,
    signed_prekeys,
    sender_keys,
    app_sync,
    sender_key_devices,
    lid_mappings,
    base_keys,
    device_lists,
    group_metadata,
    tc_tokens,
    sent_messages,
    pending_inbound,
    msg_secrets,
    device,
);

// ---------------------------------------------------------------------------
// redb only
// ---------------------------------------------------------------------------

async fn row_counts(store: &Store, session: &str) -> Vec<(&'static str, u64)> {
    let session = session.to_owned();
    store
        .read(move |txn| wa_backend::session_row_counts(txn, &session))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let reference = InMemoryBackend::new();
    populate(&reference, 3).await;
    reference
        .store_prekeys_batch(&[(9, Bytes::from_static(b"p9"))], false)
        .await
        .unwrap();
    let device_before;
    {
        let store = open(dir.path());
        let b = store.backend("a");
        populate(&b, 3).await;
        b.store_prekeys_batch(&[(9, Bytes::from_static(b"p9"))], false)
            .await
            .unwrap();
        b.mark_prekeys_uploaded(&[9]).await.unwrap();
        device_before = serde_json::to_value(b.load().await.unwrap().unwrap()).unwrap();
    }
    // Every handle is gone, so the file is closed; a second open would fail otherwise.
    let store = open(dir.path());
    let b = store.backend("a");
    assert_eq!(
        serde_json::to_value(b.load().await.unwrap().unwrap()).unwrap(),
        device_before
    );
    assert_eq!(
        b.load_prekey(9).await.unwrap(),
        Some(Bytes::from_static(b"p9"))
    );
    assert_eq!(read_back(&b, 3).await.0, read_back(&reference, 3).await.0);
    // Timestamps survived too: nothing is old enough for a sweep one hour back, all for one
    // an hour ahead.
    let b2 = store.backend("a");
    assert_eq!(
        b2.delete_expired_pending_inbound(now() - 3600)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        b2.delete_expired_pending_inbound(now() + 3600)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        b2.delete_expired_msg_secrets(now() + 7200).await.unwrap(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_never_see_each_others_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b) = (store.backend("a"), store.backend("b"));
    populate(&a, 1).await;
    populate(&b, 2).await;
    assert_eq!(a.session(), "a");

    let (mem_a, mem_b) = (InMemoryBackend::new(), InMemoryBackend::new());
    populate(&mem_a, 1).await;
    populate(&mem_b, 2).await;
    assert_eq!(read_back(&a, 1).await.0, read_back(&mem_a, 1).await.0);
    assert_eq!(read_back(&b, 2).await.0, read_back(&mem_b, 2).await.0);

    // Whole-session operations stay inside the session.
    a.clear_all_sender_key_devices().await.unwrap();
    assert!(!b.get_sender_key_devices(GROUP).await.unwrap().is_empty());
    assert_eq!(a.delete_expired_pending_inbound(i64::MAX).await.unwrap(), 1);
    assert!(
        b.get_pending_inbound(GROUP, ALICE, "in1")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(a.delete_expired_msg_secrets(i64::MAX).await.unwrap(), 1);
    assert!(
        b.get_msg_secret(GROUP, ALICE, "m1")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        a.delete_expired_tc_tokens(i64::MAX, i64::MAX)
            .await
            .unwrap(),
        1
    );
    assert!(b.get_tc_token(BOB).await.unwrap().is_some());
    assert_eq!(
        a.get_all_tc_token_jids().await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        b.get_all_tc_token_jids().await.unwrap(),
        vec![BOB.to_string()]
    );
    assert_eq!(a.get_all_lid_mappings().await.unwrap().len(), 1);
    a.clear_mutation_macs("regular").await.unwrap();
    assert!(
        b.get_mutation_mac("regular", &[1; 32])
            .await
            .unwrap()
            .is_some()
    );
    a.delete_sender_key_device_rows(&[ALICE_3]).await.unwrap();
    assert_eq!(b.get_sender_key_devices(GROUP).await.unwrap().len(), 1);
    assert_eq!(b.get_max_prekey_id().await.unwrap(), 5);
    // A device of its own per session, each with its own counter.
    assert_eq!(a.create().await.unwrap(), 1);
    assert_eq!(b.create().await.unwrap(), 1);
    assert_eq!(a.load().await.unwrap().unwrap().push_name, "device 1");
    assert_eq!(b.load().await.unwrap().unwrap().push_name, "device 2");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_session_keys_removes_one_session_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for (session, v) in [("a", 1), ("b", 2), ("ab", 3), ("", 4)] {
        populate(&store.backend(session), v).await;
    }
    let before_b = row_counts(&store, "b").await;
    let before_ab = row_counts(&store, "ab").await;
    let before_empty = row_counts(&store, "").await;
    let before_a = row_counts(&store, "a").await;
    assert_eq!(before_a.len(), 22, "one count per table");
    for (table, n) in &before_a {
        assert!(*n > 0, "populate left {table} empty");
    }

    store
        .write(|txn| wa_backend::delete_session_keys(txn, "a"))
        .await
        .unwrap();

    for (table, n) in row_counts(&store, "a").await {
        assert_eq!(n, 0, "{table} still holds rows of a");
    }
    assert_eq!(row_counts(&store, "b").await, before_b);
    assert_eq!(row_counts(&store, "ab").await, before_ab);
    assert_eq!(row_counts(&store, "").await, before_empty);
    let a = store.backend("a");
    assert!(!a.exists().await.unwrap());
    assert_eq!(a.get_latest_sync_key_id().await.unwrap(), None);

    // Deleting a session that has no rows is fine, and so is deleting through the registry.
    store
        .write(|txn| wa_backend::delete_session_keys(txn, "nobody"))
        .await
        .unwrap();
    store
        .write(|txn| wagate::store::sessions::delete(txn, "ab"))
        .await
        .unwrap();
    for (table, n) in row_counts(&store, "ab").await {
        assert_eq!(n, 0, "{table} still holds rows of ab");
    }
    assert_eq!(row_counts(&store, "b").await, before_b);
    let mem_b = InMemoryBackend::new();
    populate(&mem_b, 2).await;
    assert_eq!(
        read_back(&store.backend("b"), 2).await.0,
        read_back(&mem_b, 2).await.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_rows_are_errors_not_panics() {
    use redb::TableDefinition;
    const IDENTITIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("wa_identities");
    const DEVICE_LISTS: TableDefinition<(&str, &str), &[u8]> =
        TableDefinition::new("wa_device_lists");
    const META: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("wa_meta");

    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .write(|txn| {
            txn.open_table(IDENTITIES)?
                .insert(("a", ALICE), &[1u8, 2, 3][..])?;
            txn.open_table(DEVICE_LISTS)?
                .insert(("a", "alice"), &b"{not json"[..])?;
            txn.open_table(META)?.insert(("a", "device"), &b"[]"[..])?;
            txn.open_table(META)?
                .insert(("a", "next_device_id"), &[1u8][..])?;
            Ok(())
        })
        .await
        .unwrap();
    let b = store.backend("a");
    assert!(matches!(
        b.load_identity(ALICE).await,
        Err(wacore::store::error::StoreError::Serialization(_))
    ));
    assert!(b.get_devices("alice").await.is_err());
    assert!(b.load().await.is_err());
    assert!(b.create().await.is_err());
    // The store itself is still fine: a bad row is not an I/O failure.
    assert!(store.is_ok());
    assert!(b.has_signal_state_for_user("alice").await.unwrap());
}

/// The one intended difference from `InMemoryBackend`: when a LID moves to another phone
/// number, the old number's reverse entry is dropped only if it still points at that LID.
#[tokio::test(flavor = "multi_thread")]
async fn lid_remap_keeps_a_number_claimed_by_another_lid() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let b = store.backend("a");
    b.put_lid_mapping(&lid_entry("L1", "P", 1)).await.unwrap();
    b.put_lid_mapping(&lid_entry("L2", "P", 2)).await.unwrap();
    b.put_lid_mapping(&lid_entry("L1", "Q", 3)).await.unwrap();
    let p = b.get_pn_mapping("P").await.unwrap().expect("P still maps");
    assert_eq!(p.lid, "L2");
    assert_eq!(b.get_pn_mapping("Q").await.unwrap().unwrap().lid, "L1");
}

/// Beside whatsapp-rust's time windows, wagate holds each session to a count of sent-message
/// copies and message secrets, the oldest going first (the soak saw both grow with every
/// message for as long as the windows last: 2 hours, 30 days).
#[tokio::test(flavor = "multi_thread")]
async fn message_records_are_bounded_per_session_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b) = (store.backend("a"), store.backend("b"));
    let t = now();
    for i in 0..5 {
        a.store_sent_message(ALICE, &format!("m{i}"), b"p")
            .await
            .unwrap();
        a.put_msg_secrets(vec![secret_entry(
            ALICE,
            ALICE,
            &format!("m{i}"),
            1,
            t + 100 + i,
            t + i,
        )])
        .await
        .unwrap();
    }
    b.store_sent_message(ALICE, "m0", b"p").await.unwrap();
    b.put_msg_secrets(vec![secret_entry(ALICE, ALICE, "m0", 2, t + 100, t)])
        .await
        .unwrap();

    // At most 3 of each per session, in batches of 2 rows of each kind.
    let n = store
        .write(|txn| wa_backend::prune_message_records(txn, 3, 2))
        .await
        .unwrap();
    assert_eq!(n, 4, "2 copies and 2 secrets of a");
    let n = store
        .write(|txn| wa_backend::prune_message_records(txn, 3, 2))
        .await
        .unwrap();
    assert_eq!(n, 0);
    // The three newest remain; the send times are all within this second, so only the
    // secrets (ordered by deadline) say which went.
    for i in 0..5 {
        let secret = a
            .get_msg_secret(ALICE, ALICE, &format!("m{i}"))
            .await
            .unwrap();
        assert_eq!(secret.is_some(), i >= 2, "secret m{i}");
    }
    let mut copies = 0;
    for i in 0..5 {
        if a.take_sent_message(ALICE, &format!("m{i}"))
            .await
            .unwrap()
            .is_some()
        {
            copies += 1;
        }
    }
    assert_eq!(copies, 3);
    // The other session's rows are its own.
    assert!(b.take_sent_message(ALICE, "m0").await.unwrap().is_some());
    assert!(
        b.get_msg_secret(ALICE, ALICE, "m0")
            .await
            .unwrap()
            .is_some()
    );
}

/// The backend tells the client's wire gate of decrypts and of committed Signal state: after
/// the rows of decrypted messages, a frame waits until a write of sessions (or, for group
/// messages, sender keys) has committed; whatsapp-rust's start-up probe row is no decrypt.
#[tokio::test]
async fn the_wire_gate_hears_of_decrypts_and_of_committed_signal_state() {
    use wagate::store::wire_gate::Passage;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let b = store.backend("a");
    let gate = b.wire_gate();
    let row = |id: &'static str| PendingInboundRow {
        chat: "15550000002@s.whatsapp.net",
        sender: "15550000002:1@s.whatsapp.net",
        id,
        message: b"plaintext",
    };

    let probe = "0@s.whatsapp.net";
    b.store_pending_inbound(probe, probe, "__probe__", b"x")
        .await
        .unwrap();
    assert_eq!(gate.pass().await, Passage::Open, "the probe is no decrypt");

    let write_after = |d: u64, what: &'static str| {
        let b = b.clone();
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(d)).await;
            match what {
                "sessions" => b
                    .put_sessions_batch(&[(Arc::from("15550000002.0:1"), Bytes::from_static(b"s"))])
                    .await
                    .unwrap(),
                _ => b
                    .put_sender_key("120363000000000001@g.us::15550000002.0:1", b"k")
                    .await
                    .unwrap(),
            }
        }
    };
    for what in ["sessions", "sender keys"] {
        b.store_pending_inbound_batch(&[row("M1"), row("M2")])
            .await
            .unwrap();
        let (passage, ()) = tokio::join!(gate.pass(), write_after(20, what));
        match passage {
            Passage::Waited(d) => assert!(d >= std::time::Duration::from_millis(20), "{d:?}"),
            other => panic!("{what}: {other:?}"),
        }
        assert_eq!(
            gate.pass().await,
            Passage::Open,
            "{what}: written, free again"
        );
    }
    let stats = store.wire_stats();
    assert_eq!(stats.waits.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(stats.timeouts.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// A message whatsapp-rust decrypts as a duplicate is replayed from its pending row, or is one
/// wagate already recorded; with neither, its content was never kept (a crash came between
/// the saved ratchet step and the row), and the backend reports it for the session to ask
/// its sender again. The library's start-up probe finds its own row and is not reported.
#[tokio::test]
async fn a_duplicate_with_no_buffered_copy_and_no_record_is_reported_unrecovered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let b = store.backend("a");
    let mut lost = b.take_unrecovered().expect("handed out once");
    assert!(b.take_unrecovered().is_none(), "only once");
    let (chat, sender) = ("15550000002@s.whatsapp.net", "15550000002:1@s.whatsapp.net");

    // The probe, and a buffered decrypt: replayed, not lost.
    let probe = "0@s.whatsapp.net";
    b.store_pending_inbound(probe, probe, "__probe__", b"x")
        .await
        .unwrap();
    assert_eq!(
        b.get_pending_inbound(probe, probe, "__probe__")
            .await
            .unwrap(),
        Some(b"x".to_vec())
    );
    b.store_pending_inbound_batch(&[PendingInboundRow {
        chat,
        sender,
        id: "BUFFERED",
        message: b"plaintext",
    }])
    .await
    .unwrap();
    assert_eq!(
        b.get_pending_inbound(chat, sender, "BUFFERED")
            .await
            .unwrap(),
        Some(b"plaintext".to_vec())
    );

    // Recorded (its event was written, the ack was lost): a genuine duplicate.
    store
        .write(move |txn| {
            wagate::store::inbound::put(
                txn,
                "a",
                &wagate::store::inbound::InboundRecord {
                    id: "msg_1".into(),
                    chat: chat.into(),
                    sender: sender.into(),
                    wa_id: "RECORDED".into(),
                    kind: "text".into(),
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap();
    assert_eq!(
        b.get_pending_inbound(chat, sender, "RECORDED")
            .await
            .unwrap(),
        None
    );
    // The same id in another session's namespace is not this one's record.
    let other = store.backend("b");
    assert_eq!(
        other
            .get_pending_inbound(chat, sender, "RECORDED")
            .await
            .unwrap(),
        None
    );
    assert!(lost.try_recv().is_err(), "nothing lost in session a so far");
    let mut other_lost = other.take_unrecovered().unwrap();
    assert_eq!(other_lost.try_recv().unwrap().id, "RECORDED");

    // Neither: lost, and reported with its chat, sender and id.
    assert_eq!(
        b.get_pending_inbound(chat, sender, "NEVER-KEPT")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        lost.try_recv().unwrap(),
        wa_backend::Unrecovered {
            chat: chat.into(),
            sender: sender.into(),
            id: "NEVER-KEPT".into(),
        }
    );
    assert!(lost.try_recv().is_err());
}
