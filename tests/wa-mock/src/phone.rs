//! The mock phone: the primary device of every mock account.
//!
//! It owns the account's identity key and does what a real phone does when
//! linking a companion: it scans the QR string (or takes the 8-character
//! pair code), builds the companion's `ADVDeviceIdentity`, signs it with the
//! account key (`[6,0] || details || companion identity`), wraps it in an
//! HMAC keyed by the ADV secret and hands the result to the server, which
//! sends it as `pair-success`. It also publishes Signal keys for device 0 so
//! senders can fan out to "the phone" like they do on the real network
//! (what they send to it is recorded and dropped).

use std::collections::{BTreeMap, VecDeque};

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use wacore::libsignal::protocol::{KeyPair, PublicKey};
use wacore::pair_code::PairCodeUtils;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, SERVER_JID};
use waproto::buffa::Message as _;
use waproto::whatsapp as wa;
use waproto::whatsapp::ADVEncryptionType;

use crate::error::{Error, Result};
use crate::state::{Account, DeviceRecord, SignedPreKey};

const ADV_PREFIX_ACCOUNT_SIGNATURE: &[u8] = &[6, 0];
const PHONE_PREKEYS: u32 = 50;

/// The parts of a companion's QR string the phone needs.
#[derive(Debug, Clone)]
pub struct QrData {
    pub pairing_ref: String,
    pub noise_pub: [u8; 32],
    pub identity_pub: [u8; 32],
    pub adv_secret: [u8; 32],
}

/// Parses `ref,noise,identity,adv[,client_type]` (an optional link prefix is tolerated).
pub fn parse_qr(qr: &str) -> Result<QrData> {
    let body = qr.trim();
    let body = body.rsplit_once('#').map(|(_, b)| b).unwrap_or(body);
    let parts: Vec<&str> = body.split(',').collect();
    if parts.len() < 4 {
        return Err(Error::BadQr(format!(
            "{} fields, expected at least 4",
            parts.len()
        )));
    }
    let decode = |i: usize, what: &str| -> Result<[u8; 32]> {
        let raw = BASE64_STANDARD
            .decode(parts[i].trim())
            .map_err(|e| Error::BadQr(format!("{what}: {e}")))?;
        raw.as_slice()
            .try_into()
            .map_err(|_| Error::BadQr(format!("{what}: {} bytes, expected 32", raw.len())))
    };
    Ok(QrData {
        pairing_ref: parts[0].to_string(),
        noise_pub: decode(1, "noise key")?,
        identity_pub: decode(2, "identity key")?,
        adv_secret: decode(3, "adv secret")?,
    })
}

fn sig_rng() -> rand::rngs::ThreadRng {
    rand::rng()
}

/// A new account with its phone (device 0) and the phone's Signal keys.
pub fn new_account(phone: String, lid: String, push_name: String) -> Result<Account> {
    let identity = KeyPair::generate(&mut rand::rng());
    let registration_id = rand::random::<u32>() & 0x3fff;
    let spk = KeyPair::generate(&mut rand::rng());
    let spk_sig = identity
        .calculate_signature(&spk.public_key.serialize(), &mut sig_rng())
        .map_err(|e| Error::Crypto(e.to_string()))?;
    let mut prekeys = VecDeque::new();
    for id in 1..=PHONE_PREKEYS {
        let kp = KeyPair::generate(&mut rand::rng());
        prekeys.push_back((id, pub32(&kp.public_key)));
    }
    let phone_device = DeviceRecord {
        id: 0,
        key_index: 0,
        noise_pub: [0; 32],
        registration_id,
        identity: pub32(&identity.public_key),
        signed_prekey: Some(SignedPreKey {
            id: 1,
            public: pub32(&spk.public_key),
            signature: spk_sig.to_vec(),
        }),
        prekeys,
        device_identity: None,
        platform: "android".into(),
        logins: 0,
    };
    let mut devices = BTreeMap::new();
    devices.insert(0, phone_device);
    Ok(Account {
        phone,
        lid,
        push_name,
        identity,
        raw_id: rand::random::<u32>() >> 1,
        next_device: 1,
        next_key_index: 1,
        devices,
        profile: Default::default(),
    })
}

fn pub32(k: &PublicKey) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(k.public_key_bytes());
    out
}

/// Builds the `ADVSignedDeviceIdentityHMAC` for a companion, signed by the phone.
pub fn signed_device_identity(
    account: &Account,
    companion_identity: &[u8; 32],
    key_index: u32,
    adv_secret: &[u8; 32],
) -> Result<Vec<u8>> {
    let details = wa::ADVDeviceIdentity {
        raw_id: Some(account.raw_id),
        timestamp: Some(crate::state::now_secs()),
        key_index: Some(key_index),
        account_type: Some(ADVEncryptionType::E2EE),
        device_type: Some(ADVEncryptionType::E2EE),
    }
    .encode_to_vec();
    let mut to_sign = Vec::with_capacity(2 + details.len() + 32);
    to_sign.extend_from_slice(ADV_PREFIX_ACCOUNT_SIGNATURE);
    to_sign.extend_from_slice(&details);
    to_sign.extend_from_slice(companion_identity);
    let account_signature = account
        .identity
        .calculate_signature(&to_sign, &mut sig_rng())
        .map_err(|e| Error::Crypto(e.to_string()))?;
    let signed = wa::ADVSignedDeviceIdentity {
        details: Some(details),
        account_signature_key: Some(account.identity.public_key.public_key_bytes().to_vec()),
        account_signature: Some(account_signature.to_vec()),
        device_signature: None,
    }
    .encode_to_vec();
    let mut mac =
        Hmac::<Sha256>::new_from_slice(adv_secret).map_err(|e| Error::Crypto(e.to_string()))?;
    mac.update(&signed);
    let hmac = mac.finalize().into_bytes().to_vec();
    Ok(wa::ADVSignedDeviceIdentityHMAC {
        details: Some(signed),
        hmac: Some(hmac),
        account_type: Some(ADVEncryptionType::E2EE),
    }
    .encode_to_vec())
}

/// The `pair-success` iq the server sends to a companion the phone linked.
pub fn pair_success_iq(
    iq_id: &str,
    device_identity: Vec<u8>,
    device_jid: &Jid,
    lid_jid: &Jid,
    push_name: Option<&str>,
) -> Node {
    let mut children = vec![
        NodeBuilder::new("device-identity")
            .bytes(device_identity)
            .build(),
        NodeBuilder::new("platform").attr("name", "android").build(),
        NodeBuilder::new("device")
            .attr("jid", device_jid.clone())
            .attr("lid", lid_jid.clone())
            .build(),
    ];
    if let Some(name) = push_name {
        children.push(NodeBuilder::new("biz").attr("name", name).build());
    }
    NodeBuilder::new("iq")
        .attr("from", SERVER_JID)
        .attr("type", "set")
        .attr("id", iq_id)
        .attr("t", crate::state::now_secs().to_string())
        .children([NodeBuilder::new("pair-success").children(children).build()])
        .build()
}

/// The account's signed key-index list, as usync returns it.
pub fn key_index_list(account: &Account) -> Vec<u8> {
    let valid: Vec<u32> = account
        .devices
        .values()
        .filter(|d| d.id != 0)
        .map(|d| d.key_index)
        .collect();
    let details = wa::ADVKeyIndexList {
        raw_id: Some(account.raw_id),
        timestamp: Some(crate::state::now_secs()),
        current_index: Some(valid.iter().copied().max().unwrap_or(0)),
        valid_indexes: valid,
        ..Default::default()
    }
    .encode_to_vec();
    let signature = account
        .identity
        .calculate_signature(&details, &mut sig_rng())
        .map(|s| s.to_vec())
        .ok();
    wa::ADVSignedKeyIndexList {
        details: Some(details),
        account_signature: signature,
        ..Default::default()
    }
    .encode_to_vec()
}

/// Stage 2 of pair-code linking, phone side: the user typed `code`.
/// Returns the phone's fresh ephemeral key pair, the companion's ephemeral
/// public key and the `primary_hello` wrapped ephemeral to send.
pub fn enter_code(wrapped_companion: &[u8], code: &str) -> Result<(KeyPair, [u8; 32], [u8; 80])> {
    let companion_eph = PairCodeUtils::decrypt_primary_ephemeral_pub(wrapped_companion, code)
        .map_err(|e| Error::Crypto(e.to_string()))?;
    // A wrong code still "decrypts" (CTR) to some key; the mismatch shows up
    // when the companion's key bundle fails to open at companion_finish.
    let primary_eph = KeyPair::generate(&mut rand::rng());
    let wrapped = PairCodeUtils::encrypt_ephemeral_pub(&pub32(&primary_eph.public_key), code);
    Ok((primary_eph, companion_eph, wrapped))
}

/// The `primary_hello` notification carrying the phone's ephemeral and identity.
pub fn primary_hello_notification(
    id: &str,
    wrapped_primary: &[u8; 80],
    primary_identity: &[u8],
    pairing_ref: &[u8],
) -> Node {
    NodeBuilder::new("notification")
        .attr("from", SERVER_JID)
        .attr("type", "link_code_companion_reg")
        .attr("id", id)
        .attr("t", crate::state::now_secs().to_string())
        .children([NodeBuilder::new("link_code_companion_reg")
            .attr("stage", "primary_hello")
            .children([
                NodeBuilder::new("link_code_pairing_wrapped_primary_ephemeral_pub")
                    .bytes(wrapped_primary.to_vec())
                    .build(),
                NodeBuilder::new("primary_identity_pub")
                    .bytes(primary_identity.to_vec())
                    .build(),
                NodeBuilder::new("link_code_pairing_ref")
                    .bytes(pairing_ref.to_vec())
                    .build(),
            ])
            .build()])
        .build()
}

/// Stage 2 finish, phone side: opens the companion's key bundle and derives
/// the ADV secret both sides now share. Returns `(companion identity, adv secret)`.
pub fn open_key_bundle(
    primary_eph: &KeyPair,
    companion_eph: &[u8; 32],
    primary_identity: &KeyPair,
    wrapped_bundle: &[u8],
) -> Result<([u8; 32], [u8; 32])> {
    let crypto = |e: &dyn std::fmt::Display| Error::Crypto(e.to_string());
    if wrapped_bundle.len() < 32 + 12 + 16 {
        return Err(Error::Crypto("key bundle too short".into()));
    }
    let companion_eph_pub =
        PublicKey::from_djb_public_key_bytes(companion_eph).map_err(|e| crypto(&e))?;
    let eph_shared = primary_eph
        .calculate_agreement(&companion_eph_pub)
        .map_err(|e| crypto(&e))?;
    let salt = &wrapped_bundle[..32];
    let iv: [u8; 12] = wrapped_bundle[32..44]
        .try_into()
        .map_err(|_| Error::Crypto("bad iv".into()))?;
    let mut enc_key = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(
        &eph_shared,
        Some(salt),
        b"link_code_pairing_key_bundle_encryption_key",
        &mut enc_key,
    )
    .map_err(|e| crypto(&e))?;
    let mut bundle = Vec::new();
    wacore::libsignal::crypto::aes_256_gcm_decrypt(
        &enc_key,
        &iv,
        b"",
        &wrapped_bundle[44..],
        &mut bundle,
    )
    .map_err(|e| crypto(&e))?;
    if bundle.len() != 96 {
        return Err(Error::Crypto(format!(
            "key bundle is {} bytes, expected 96",
            bundle.len()
        )));
    }
    let companion_identity: [u8; 32] = bundle[..32]
        .try_into()
        .map_err(|_| Error::Crypto("bad bundle".into()))?;
    let random = &bundle[64..96];
    let companion_identity_pub =
        PublicKey::from_djb_public_key_bytes(&companion_identity).map_err(|e| crypto(&e))?;
    let identity_shared = primary_identity
        .calculate_agreement(&companion_identity_pub)
        .map_err(|e| crypto(&e))?;
    let mut combined = Vec::with_capacity(96);
    combined.extend_from_slice(&eph_shared);
    combined.extend_from_slice(&identity_shared);
    combined.extend_from_slice(random);
    let mut adv_secret = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(&combined, None, b"adv_secret", &mut adv_secret)
        .map_err(|e| crypto(&e))?;
    Ok((companion_identity, adv_secret))
}

/// WhatsApp's request for a passkey assertion before a device may link, sent instead of
/// `pair-success` after the phone scanned the QR code. The options are WebAuthn's, as the real
/// server sends them (rpId `whatsapp.com`, a 32-byte challenge, ten minutes, user
/// verification required). Shape checked against whatsapp-rust's `passkey/flow.rs` and
/// whatsmeow's `pair-passkey.go`.
pub fn passkey_request(id: &str, with_options: bool) -> Node {
    let challenge: [u8; 32] = rand::random();
    let options = serde_json::json!({
        "challenge": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(challenge),
        "timeout": 600000,
        "rpId": "whatsapp.com",
        "allowCredentials": [],
        "userVerification": "required",
        "extensions": {"uvm": true}
    });
    let b = NodeBuilder::new("notification")
        .attr("type", "passkey_prologue_request")
        .attr("from", SERVER_JID)
        .attr("id", id)
        .attr("t", crate::state::now_secs().to_string());
    if !with_options {
        return b.build();
    }
    b.children([NodeBuilder::new("passkey_request_options")
        .string_content(options.to_string())
        .build()])
        .build()
}
