//! The groups a session's account is in, as the API lists them: each member by the JID the
//! group addresses them with, plus their phone-number JID and LID where known.

use serde::Serialize;
use whatsapp_rust::{Client, Jid};

use super::EngineError;

/// A group, for `GET /api/sessions/{sid}/groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupSummary {
    /// The group JID (`<id>@g.us`): the `to` of a message to the group.
    pub id: String,
    pub subject: String,
    /// `pn` or `lid`: how the group addresses its members.
    pub addressing_mode: String,
    /// Unix seconds, when the server says.
    pub created_at: Option<u64>,
    pub participants: Vec<GroupMember>,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMember {
    /// The JID the group knows the member by.
    pub jid: String,
    /// `<digits>@s.whatsapp.net`, when known.
    pub phone: Option<String>,
    /// `<digits>@lid`, when known.
    pub lid: Option<String>,
    /// `superadmin`, `admin` or `member`.
    pub role: &'static str,
}

/// Every group the client's account participates in, sorted by id.
pub(crate) async fn list(client: &Client) -> Result<Vec<GroupSummary>, EngineError> {
    let groups = client
        .groups()
        .get_participating()
        .await
        .map_err(|e| EngineError::Client(e.to_string()))?;
    let mut out = Vec::with_capacity(groups.len());
    for (jid, meta) in groups {
        let participants = members(client, &meta).await;
        out.push(GroupSummary {
            id: jid.to_string(),
            subject: meta.subject.to_string(),
            addressing_mode: meta.addressing_mode.as_str().to_string(),
            created_at: meta.creation_time,
            participants,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Running a group
// ---------------------------------------------------------------------------------------------

use whatsapp_rust::features::{
    GroupCreateOptions, GroupDescription, GroupError, GroupMetadata, GroupParticipantOptions,
    GroupSubject, JoinGroupResult, MembershipApprovalMode, ParticipantChangeResponse,
    PreviousDescription,
};

/// Why WhatsApp refused a group request (the API turns each into a status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupRefusal {
    /// No such group (or the account is not in it any more).
    NotFound,
    /// The account is not a member, or not an admin where the change needs one.
    Forbidden,
    /// The group changed meanwhile (the description was replaced since it was read).
    Conflict,
    /// The account is in the group already.
    AlreadyMember,
    /// The invite code is unknown.
    InviteInvalid,
    /// The invite code was reset.
    InviteRevoked,
}

/// A refusal or failure of a group request.
pub(crate) fn group_error(e: GroupError) -> EngineError {
    use whatsapp_rust::IqError;
    let refused = |kind, what: &str| EngineError::GroupRefused {
        kind,
        message: what.to_string(),
    };
    match e {
        GroupError::DescriptionConflict => refused(
            GroupRefusal::Conflict,
            "the description changed since it was read; read the group again",
        ),
        GroupError::InvalidRequest(m) => EngineError::InvalidGroup(m),
        GroupError::Iq(IqError::ServerError { code, text, .. }) => match code {
            404 => refused(GroupRefusal::NotFound, "WhatsApp knows no such group"),
            401 | 403 => refused(
                GroupRefusal::Forbidden,
                &format!(
                    "WhatsApp refused ({code} {text}): the account is not in the group, or \
                     not an admin of it"
                ),
            ),
            409 => refused(GroupRefusal::Conflict, "the group changed meanwhile"),
            304 => refused(
                GroupRefusal::AlreadyMember,
                "the account is in the group already",
            ),
            400 => EngineError::InvalidGroup(format!(
                "WhatsApp refused the request as malformed ({text})"
            )),
            406 => refused(
                GroupRefusal::InviteInvalid,
                "WhatsApp knows no such invite code",
            ),
            410 => refused(GroupRefusal::InviteRevoked, "the invite code was reset"),
            _ => EngineError::Client(format!("WhatsApp answered {code} {text}")),
        },
        other => EngineError::Client(other.to_string()),
    }
}

/// One group in full, for `GET /api/sessions/{sid}/groups/{gid}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupDetails {
    pub id: String,
    pub subject: String,
    pub description: Option<String>,
    pub addressing_mode: String,
    pub created_at: Option<u64>,
    /// Who created it (the JID the group names them by), when the server says.
    pub owner: Option<String>,
    pub participants: Vec<GroupMember>,
    /// The JIDs of the admins (superadmin included).
    pub admins: Vec<String>,
    pub settings: GroupSettings,
    /// The invite link, when the account is an admin (only admins may read it).
    pub invite_link: Option<String>,
}

/// A group's settings, as read and as changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupSettings {
    /// Only admins send messages.
    pub announce: bool,
    /// Only admins change the subject, description and settings.
    pub locked: bool,
    /// Disappearing messages after this many seconds (0: off).
    pub ephemeral_s: u32,
    /// New members need an admin's approval.
    pub approval: bool,
}

/// A change to a group's subject, description or settings; absent fields stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    #[serde(default)]
    pub subject: Option<String>,
    /// `""` removes the description.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub announce: Option<bool>,
    #[serde(default)]
    pub locked: Option<bool>,
    #[serde(default)]
    pub ephemeral_s: Option<u32>,
    #[serde(default)]
    pub approval: Option<bool>,
}

/// The disappearing-message timers WhatsApp offers: 24 hours, 7 days, 90 days.
pub const EPHEMERAL_TIMERS: [u32; 3] = [86_400, 604_800, 7_776_000];

impl GroupPatch {
    /// Check what WhatsApp would refuse anyway, naming the field.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: String| Err(EngineError::InvalidGroup(m));
        if self == &GroupPatch::default() {
            return bad(
                "nothing to change: give subject, description, announce, locked, ephemeral_s or \
                 approval"
                    .into(),
            );
        }
        if let Some(s) = &self.subject
            && (s.trim().is_empty() || s.chars().count() > MAX_SUBJECT)
        {
            return bad(format!("subject: 1 to {MAX_SUBJECT} characters, not blank"));
        }
        if let Some(d) = &self.description
            && d.chars().count() > MAX_DESCRIPTION
        {
            return bad(format!("description: at most {MAX_DESCRIPTION} characters"));
        }
        if let Some(e) = self.ephemeral_s
            && e != 0
            && !EPHEMERAL_TIMERS.contains(&e)
        {
            return bad(format!(
                "ephemeral_s: 0 (off), 86400, 604800 or 7776000, not {e}"
            ));
        }
        Ok(())
    }
}

/// The longest subject and description WhatsApp takes.
pub const MAX_SUBJECT: usize = wacore::iq::groups::GROUP_SUBJECT_MAX_LENGTH;
pub const MAX_DESCRIPTION: usize = wacore::iq::groups::GROUP_DESCRIPTION_MAX_LENGTH;

/// What became of one number in a participant change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantResult {
    /// The JID asked for.
    pub jid: String,
    /// Whether WhatsApp made the change for this number.
    pub ok: bool,
    /// WhatsApp's code when it did not (`403` privacy settings, `404` not on WhatsApp or
    /// not in the group, `409` already a member, ...).
    pub error: Option<String>,
    /// What the code means.
    pub reason: Option<&'static str>,
    /// For a `403` on add: WhatsApp sent the person an invitation to join instead, valid
    /// until this time (unix seconds).
    pub invited_until: Option<u64>,
}

fn reason_of(code: &str) -> &'static str {
    match code {
        "403" => {
            "their privacy settings do not let this account add them; they were sent an invitation"
        }
        "404" => "not on WhatsApp, or not in the group",
        "408" => "they left the group recently",
        "409" => "already in the group",
        "401" => "only admins may do this",
        "419" => "the group is full",
        _ => "WhatsApp refused",
    }
}

fn participant_results(
    asked: &[Jid],
    answers: &[ParticipantChangeResponse],
) -> Vec<ParticipantResult> {
    asked
        .iter()
        .map(|j| {
            let answer = answers.iter().find(|a| {
                a.jid.user == j.user || a.phone_number.as_ref().is_some_and(|p| p.user == j.user)
            });
            match answer {
                Some(a) => ParticipantResult {
                    jid: j.to_string(),
                    ok: a.is_ok(),
                    reason: a.error.as_deref().map(reason_of),
                    error: a.error.clone(),
                    invited_until: a.add_request.as_ref().map(|r| r.expiration),
                },
                None => ParticipantResult {
                    jid: j.to_string(),
                    ok: false,
                    error: None,
                    reason: Some("WhatsApp did not answer for this number"),
                    invited_until: None,
                },
            }
        })
        .collect()
}

/// A person to add, remove, promote or demote: phone digits (with the country code) or a
/// person JID (`…@s.whatsapp.net`, `…@lid`).
pub fn person(raw: &str) -> Result<Jid, EngineError> {
    let r = super::compose::parse_recipient(raw).map_err(|_| {
        EngineError::InvalidGroup(format!(
            "participants: '{raw}' is not a phone number or person JID"
        ))
    })?;
    if r.is_group() {
        return Err(EngineError::InvalidGroup(format!(
            "participants: '{raw}' is a group, not a person"
        )));
    }
    r.jid()
        .map_err(|_| EngineError::InvalidGroup(format!("participants: '{raw}' is not a valid JID")))
}

/// A group JID from the path: `<id>@g.us` or just `<id>`.
pub fn group_jid(raw: &str) -> Result<Jid, EngineError> {
    let full = if raw.contains('@') {
        raw.to_string()
    } else {
        format!("{raw}@g.us")
    };
    match full.parse::<Jid>() {
        Ok(j) if j.server == whatsapp_rust::Server::Group && !j.user.is_empty() => Ok(j),
        _ => Err(EngineError::InvalidGroup(format!(
            "'{raw}' is not a group id (<digits>-<digits>@g.us or <digits>@g.us)"
        ))),
    }
}

async fn members(client: &Client, meta: &GroupMetadata) -> Vec<GroupMember> {
    let mut participants = Vec::with_capacity(meta.participants.len());
    for p in &meta.participants {
        let who = identify(client, &p.jid, p.phone_number.as_ref(), p.lid.as_ref()).await;
        participants.push(GroupMember {
            jid: who.jid,
            phone: who.phone,
            lid: who.lid,
            role: if p.is_super_admin() {
                "superadmin"
            } else if p.is_admin() {
                "admin"
            } else {
                "member"
            },
        });
    }
    participants
}

/// Whether the account is an admin of the group, by its phone number or LID.
fn is_admin(client: &Client, members: &[GroupMember]) -> bool {
    let me: Vec<String> = [client.pn(), client.lid()]
        .into_iter()
        .flatten()
        .map(|j| j.to_non_ad().to_string())
        .collect();
    members.iter().any(|m| {
        m.role != "member"
            && [Some(&m.jid), m.phone.as_ref(), m.lid.as_ref()]
                .into_iter()
                .flatten()
                .any(|j| me.contains(j))
    })
}

/// One group in full, asked of WhatsApp.
pub(crate) async fn details(client: &Client, gid: &Jid) -> Result<GroupDetails, EngineError> {
    let meta = client
        .groups()
        .get_metadata(gid)
        .await
        .map_err(group_error)?;
    let mut group = summary_of(client, &meta).await;
    if is_admin(client, &group.participants) {
        group.invite_link = client
            .groups()
            .get_invite_link(gid.clone(), false)
            .await
            .ok()
            .map(|code| invite_url(&code));
    }
    Ok(group)
}

/// A group as its metadata describes it (without the invite link).
async fn summary_of(client: &Client, meta: &GroupMetadata) -> GroupDetails {
    let participants = members(client, meta).await;
    GroupDetails {
        id: meta.id.to_string(),
        subject: meta.subject.clone(),
        description: meta.description.clone().filter(|d| !d.is_empty()),
        addressing_mode: meta.addressing_mode.as_str().to_string(),
        created_at: meta.creation_time,
        owner: meta.creator.as_ref().map(|j| j.to_non_ad().to_string()),
        admins: participants
            .iter()
            .filter(|m| m.role != "member")
            .map(|m| m.jid.clone())
            .collect(),
        participants,
        settings: GroupSettings {
            announce: meta.is_announcement,
            locked: meta.is_locked,
            ephemeral_s: meta
                .ephemeral
                .as_ref()
                .and_then(|e| e.expiration)
                .unwrap_or(0),
            approval: meta.membership_approval,
        },
        invite_link: None,
    }
}

/// `https://chat.whatsapp.com/<code>`, or the code as given when it is a link already.
pub fn invite_url(code: &str) -> String {
    if code.starts_with("https://") {
        code.to_string()
    } else {
        format!("https://chat.whatsapp.com/{code}")
    }
}

/// Create a group with `subject` and `participants`: the new group, and what became of each
/// number (one WhatsApp's privacy settings keep out is sent an invitation instead).
pub(crate) async fn create(
    client: &Client,
    subject: &str,
    participants: &[Jid],
) -> Result<(GroupDetails, Vec<ParticipantResult>), EngineError> {
    let options = GroupCreateOptions::new(subject).with_participants(
        participants
            .iter()
            .map(|j| GroupParticipantOptions::new(j.clone()))
            .collect(),
    );
    let created = client
        .groups()
        .create_group(options)
        .await
        .map_err(group_error)?;
    let gid = created.metadata.id.clone();
    // The group exists now: if reading it back fails, answer from what the creation said
    // (an error would invite a retry, and a second group).
    let group = match details(client, &gid).await {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(group = %gid, error = %e, "created group not read back");
            summary_of(client, &created.metadata).await
        }
    };
    let results = participants
        .iter()
        .map(|j| {
            let user = j.user.as_str();
            let ok = group.participants.iter().any(|m| {
                [Some(&m.jid), m.phone.as_ref(), m.lid.as_ref()]
                    .into_iter()
                    .flatten()
                    .any(|x| x.split('@').next() == Some(user))
            });
            ParticipantResult {
                jid: j.to_string(),
                ok,
                error: None,
                reason: (!ok).then_some(
                    "not added: not on WhatsApp, or their privacy settings keep them out (they were sent an invitation)",
                ),
                invited_until: None,
            }
        })
        .collect();
    Ok((group, results))
}

/// What a participant change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberAction {
    Add,
    Remove,
    Promote,
    Demote,
}

impl MemberAction {
    pub fn parse(s: &str) -> Option<MemberAction> {
        Some(match s {
            "add" => MemberAction::Add,
            "remove" => MemberAction::Remove,
            "promote" => MemberAction::Promote,
            "demote" => MemberAction::Demote,
            _ => return None,
        })
    }

    /// Whether it changes who is in the group (paced like sends).
    pub fn changes_membership(self) -> bool {
        matches!(self, MemberAction::Add | MemberAction::Remove)
    }
}

/// Add, remove, promote or demote people; one result per person, in the order asked.
pub(crate) async fn change_members(
    client: &Client,
    gid: &Jid,
    action: MemberAction,
    people: &[Jid],
) -> Result<Vec<ParticipantResult>, EngineError> {
    let g = client.groups();
    let answers = match action {
        MemberAction::Add => g.add_participants(gid.clone(), people).await,
        MemberAction::Remove => g.remove_participants(gid.clone(), people).await,
        MemberAction::Promote => g.promote_participants(gid.clone(), people).await,
        MemberAction::Demote => g.demote_participants(gid.clone(), people).await,
    }
    .map_err(group_error)?;
    Ok(participant_results(people, &answers))
}

/// Apply a patch, in a fixed order (subject, description, then the settings); the group as
/// it is afterwards. A refusal stops at the change refused; the earlier ones stay made.
pub(crate) async fn update(
    client: &Client,
    gid: &Jid,
    patch: &GroupPatch,
) -> Result<GroupDetails, EngineError> {
    let g = client.groups();
    if let Some(s) = &patch.subject {
        let subject = GroupSubject::new(s.trim())
            .map_err(|e| EngineError::InvalidGroup(format!("subject: {e}")))?;
        g.set_subject(gid.clone(), subject)
            .await
            .map_err(group_error)?;
    }
    if let Some(d) = &patch.description {
        let body = if d.is_empty() {
            None
        } else {
            Some(
                GroupDescription::new(d)
                    .map_err(|e| EngineError::InvalidGroup(format!("description: {e}")))?,
            )
        };
        g.set_description(gid.clone(), body, PreviousDescription::Resolve)
            .await
            .map_err(group_error)?;
    }
    if let Some(a) = patch.announce {
        g.set_announce(gid.clone(), a).await.map_err(group_error)?;
    }
    if let Some(l) = patch.locked {
        g.set_locked(gid.clone(), l).await.map_err(group_error)?;
    }
    if let Some(e) = patch.ephemeral_s {
        g.set_ephemeral(gid.clone(), e).await.map_err(group_error)?;
    }
    if let Some(on) = patch.approval {
        let mode = if on {
            MembershipApprovalMode::On
        } else {
            MembershipApprovalMode::Off
        };
        g.set_membership_approval(gid.clone(), mode)
            .await
            .map_err(group_error)?;
    }
    details(client, gid).await
}

/// The group's invite link; `reset` makes a new one (the old stops working).
pub(crate) async fn invite(client: &Client, gid: &Jid, reset: bool) -> Result<String, EngineError> {
    client
        .groups()
        .get_invite_link(gid.clone(), reset)
        .await
        .map(|c| invite_url(&c))
        .map_err(group_error)
}

/// Join a group by its invite code or link: its JID, and whether an admin must approve
/// first.
pub(crate) async fn join(client: &Client, code: &str) -> Result<(String, bool), EngineError> {
    let joined = client
        .groups()
        .join_with_invite_code(code)
        .await
        .map_err(group_error)?;
    Ok(match joined {
        JoinGroupResult::Joined(j) => (j.to_string(), false),
        JoinGroupResult::PendingApproval(j) => (j.to_string(), true),
    })
}

pub(crate) async fn leave(client: &Client, gid: &Jid) -> Result<(), EngineError> {
    client
        .groups()
        .leave(gid.clone())
        .await
        .map_err(group_error)
}

// ---------------------------------------------------------------------------------------------
// The manager's group requests: a connected client, and send room for membership changes
// ---------------------------------------------------------------------------------------------

impl super::SessionManager {
    /// The session's client, or 409 when it is not connected.
    async fn require_client(&self, sid: &str) -> Result<std::sync::Arc<Client>, EngineError> {
        self.connected_client(sid)
            .await?
            .ok_or_else(|| EngineError::NotConnected(sid.to_string()))
    }

    /// Count `n` numbers as sends now, or refuse when the session's send limits leave no
    /// room for all of them (nothing is counted then). A change larger than the smallest
    /// limit could never go: it is refused as such (422), to be made in smaller steps.
    async fn take_send_room(&self, sid: &str, n: usize) -> Result<(), EngineError> {
        use super::pacing;
        let (settings, _, paired_at) =
            super::sender::load_settings(self.store(), &self.pacing_defaults(), sid).await?;
        let s = sid.to_string();
        let outcome = self
            .store()
            .write(move |t| {
                let now = crate::events::now_ms();
                let warm = pacing::warm_up(&settings, paired_at, now);
                let day = if warm.active {
                    (warm.daily_limit, "the warm-up's daily limit")
                } else {
                    (settings.per_day, "per_day")
                };
                let (cap, which) = [
                    (settings.per_minute, "per_minute"),
                    (settings.per_hour, "per_hour"),
                    day,
                ]
                .into_iter()
                .min_by_key(|(limit, _)| *limit)
                .unwrap_or(day);
                if n > cap as usize {
                    return Ok(Room::Never { cap, which });
                }
                let mut sends = crate::store::pacing::sends_since_w(t, &s, now - pacing::DAY_MS)?;
                for _ in 0..n {
                    let slot = pacing::earliest(&settings, &sends, paired_at, now);
                    if slot.at > now {
                        return Ok(Room::Later(slot.at - now));
                    }
                    sends.push(now);
                }
                crate::store::pacing::log_sends(t, &s, now, n)?;
                Ok(Room::Taken)
            })
            .await?;
        match outcome {
            Room::Taken => Ok(()),
            Room::Later(wait_ms) => Err(EngineError::RateLimited {
                numbers: n,
                retry_after_s: u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1),
            }),
            Room::Never { cap, which } => Err(EngineError::InvalidGroup(format!(
                "participants: {n} numbers in one change, but the session's send limits \
                 ({which}: {cap}) let at most {cap} go at once; make the change in steps of \
                 {cap} or fewer"
            ))),
        }
    }

    pub async fn group(&self, sid: &str, gid: &str) -> Result<GroupDetails, EngineError> {
        let gid = group_jid(gid)?;
        let client = self.require_client(sid).await?;
        details(&client, &gid).await
    }

    /// Create a group; each participant counts as a send.
    pub async fn create_group(
        &self,
        sid: &str,
        subject: &str,
        participants: &[String],
    ) -> Result<(GroupDetails, Vec<ParticipantResult>), EngineError> {
        if subject.trim().is_empty() || subject.chars().count() > MAX_SUBJECT {
            return Err(EngineError::InvalidGroup(format!(
                "subject: 1 to {MAX_SUBJECT} characters, not blank"
            )));
        }
        let people = people(participants, 0)?;
        let client = self.require_client(sid).await?;
        self.take_send_room(sid, people.len()).await?;
        create(&client, subject.trim(), &people).await
    }

    /// Add, remove, promote or demote people; adds and removes count as sends.
    pub async fn change_group_members(
        &self,
        sid: &str,
        gid: &str,
        action: MemberAction,
        participants: &[String],
    ) -> Result<Vec<ParticipantResult>, EngineError> {
        let gid = group_jid(gid)?;
        let people = people(participants, 1)?;
        let client = self.require_client(sid).await?;
        if action.changes_membership() {
            self.take_send_room(sid, people.len()).await?;
        }
        change_members(&client, &gid, action, &people).await
    }

    pub async fn update_group(
        &self,
        sid: &str,
        gid: &str,
        patch: &GroupPatch,
    ) -> Result<GroupDetails, EngineError> {
        patch.validate()?;
        let gid = group_jid(gid)?;
        let client = self.require_client(sid).await?;
        update(&client, &gid, patch).await
    }

    pub async fn group_invite(
        &self,
        sid: &str,
        gid: &str,
        reset: bool,
    ) -> Result<String, EngineError> {
        let gid = group_jid(gid)?;
        let client = self.require_client(sid).await?;
        invite(&client, &gid, reset).await
    }

    pub async fn join_group(&self, sid: &str, code: &str) -> Result<(String, bool), EngineError> {
        let code = code.trim();
        let bare = code.trim_start_matches("https://chat.whatsapp.com/");
        if bare.is_empty() || bare.len() > 64 || !bare.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(EngineError::InvalidGroup(
                "code: an invite code or https://chat.whatsapp.com/<code> link".into(),
            ));
        }
        let client = self.require_client(sid).await?;
        join(&client, bare).await
    }

    pub async fn leave_group(&self, sid: &str, gid: &str) -> Result<(), EngineError> {
        let gid = group_jid(gid)?;
        let client = self.require_client(sid).await?;
        leave(&client, &gid).await
    }
}

/// What [`SessionManager::take_send_room`] found.
enum Room {
    Taken,
    /// No room now: this many ms until there is.
    Later(i64),
    /// More numbers than the smallest limit: never.
    Never {
        cap: u32,
        which: &'static str,
    },
}

/// The most people one request may name (WhatsApp's group size limit).
pub const MAX_PARTICIPANTS: usize = 1024;

/// Parse a participant list: at least `min`, at most [`MAX_PARTICIPANTS`], no repeats.
fn people(raw: &[String], min: usize) -> Result<Vec<Jid>, EngineError> {
    if raw.len() < min || raw.len() > MAX_PARTICIPANTS {
        return Err(EngineError::InvalidGroup(format!(
            "participants: {min} to {MAX_PARTICIPANTS} numbers"
        )));
    }
    let mut out: Vec<Jid> = Vec::with_capacity(raw.len());
    for r in raw {
        let j = person(r)?;
        if !out.iter().any(|x| x.user == j.user && x.server == j.server) {
            out.push(j);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Group notifications
// ---------------------------------------------------------------------------------------------

use crate::events::{Event, EventKind, GroupChange, GroupPerson, Notice};
use crate::store::{Store, outbox};
use wacore::stanza::groups::{GroupNotificationAction as Action, GroupParticipantInfo};
use whatsapp_rust::types::events::GroupUpdate;

/// A person with both identities, from what the group says and the client's mapping.
async fn identify(
    client: &Client,
    jid: &Jid,
    phone: Option<&Jid>,
    lid: Option<&Jid>,
) -> GroupPerson {
    let mut phone = phone.cloned().or_else(|| jid.is_pn().then(|| jid.clone()));
    let mut lid = lid.cloned().or_else(|| jid.is_lid().then(|| jid.clone()));
    if (phone.is_none() || lid.is_none())
        && let Ok(Some(entry)) = client.get_lid_pn_entry(jid).await
    {
        phone.get_or_insert_with(|| Jid::pn(&*entry.phone_number));
        lid.get_or_insert_with(|| Jid::lid(&*entry.lid));
    }
    GroupPerson {
        jid: jid.to_non_ad().to_string(),
        phone: phone.map(|j| j.to_non_ad().to_string()),
        lid: lid.map(|j| j.to_non_ad().to_string()),
    }
}

async fn people_of(client: &Client, list: &[GroupParticipantInfo]) -> Vec<GroupPerson> {
    let mut out = Vec::with_capacity(list.len());
    for p in list {
        out.push(person_info(client, p).await);
    }
    out
}

async fn person_info(client: &Client, p: &GroupParticipantInfo) -> GroupPerson {
    identify(client, &p.jid, p.phone_number.as_ref(), p.lid.as_ref()).await
}

/// The event a group notification makes, if wagate reports that kind of change.
pub(crate) async fn change_of(client: &Client, u: &GroupUpdate) -> Option<EventKind> {
    let by = match &u.participant {
        Some(j) => Some(identify(client, j, u.participant_pn.as_ref(), None).await),
        None => None,
    };
    let mut c = GroupChange {
        group: u.group_jid.to_string(),
        by,
        at: u.timestamp.timestamp_millis(),
        ..Default::default()
    };
    let same_as_author = |people: &[GroupPerson], by: &Option<GroupPerson>| {
        by.as_ref().is_some_and(|b| {
            people.len() == 1
                && [
                    Some(&people[0].jid),
                    people[0].phone.as_ref(),
                    people[0].lid.as_ref(),
                ]
                .into_iter()
                .flatten()
                .any(|j| *j == b.jid || Some(j) == b.phone.as_ref() || Some(j) == b.lid.as_ref())
        })
    };
    let membership = |c: GroupChange| Some(EventKind::GroupParticipants(c));
    let updated = |c: GroupChange| Some(EventKind::GroupUpdated(c));
    match &u.action {
        Action::Add {
            participants,
            reason,
        } => {
            c.participants = people_of(client, participants).await;
            let joined =
                reason.as_deref() == Some("invite") || same_as_author(&c.participants, &c.by);
            c.action = if joined { "join" } else { "add" }.into();
            membership(c)
        }
        Action::Remove { participants, .. } => {
            c.participants = people_of(client, participants).await;
            c.action = if same_as_author(&c.participants, &c.by) {
                "leave"
            } else {
                "remove"
            }
            .into();
            membership(c)
        }
        Action::Promote { participants } => {
            c.participants = people_of(client, participants).await;
            c.action = "promote".into();
            membership(c)
        }
        Action::Demote { participants } => {
            c.participants = people_of(client, participants).await;
            c.action = "demote".into();
            membership(c)
        }
        Action::CreatedMembershipRequests { requests, .. } => {
            c.participants = people_of(client, requests).await;
            c.action = "join_request".into();
            membership(c)
        }
        Action::Create { .. } => {
            c.action = "created".into();
            updated(c)
        }
        Action::Subject { subject, .. } => {
            c.action = "subject".into();
            c.subject = Some(subject.clone());
            updated(c)
        }
        Action::Description { description, .. } => {
            c.action = "description".into();
            c.description = description.clone();
            updated(c)
        }
        Action::Locked { .. } | Action::Unlocked => {
            c.action = "locked".into();
            c.enabled = Some(matches!(u.action, Action::Locked { .. }));
            updated(c)
        }
        Action::Announce | Action::NotAnnounce => {
            c.action = "announce".into();
            c.enabled = Some(matches!(u.action, Action::Announce));
            updated(c)
        }
        Action::Ephemeral { expiration, .. } => {
            c.action = "ephemeral".into();
            c.ephemeral_s = Some(*expiration);
            updated(c)
        }
        Action::MembershipApprovalMode { enabled } => {
            c.action = "approval".into();
            c.enabled = Some(*enabled);
            updated(c)
        }
        Action::Invite { .. } | Action::RevokeInvite => {
            c.action = "invite_reset".into();
            updated(c)
        }
        Action::Delete { .. } => {
            c.action = "deleted".into();
            updated(c)
        }
        _ => None,
    }
}

/// Record and publish the event of a group notification. Its id comes from the
/// notification (its id and the action's place in it), so one handed over twice is
/// recorded once.
pub(crate) async fn on_update(
    store: &Store,
    bus: &crate::events::Bus,
    session: &str,
    client: &Client,
    u: &GroupUpdate,
) {
    let Some(kind) = change_of(client, u).await else {
        return;
    };
    let mut event = Event::new(session, kind);
    if let Some(nid) = &u.notification_id {
        let ulid = outbox::inbound_ulid(
            session,
            u.group_jid.to_string().as_str(),
            "w:gp2",
            &format!("{nid}/{}", u.action_index),
            u.timestamp.timestamp_millis(),
        );
        event.id = format!("evt_{ulid}");
    }
    let written = store.write(move |t| outbox::record(t, event.clone())).await;
    match written {
        Ok(Some(e)) => bus.publish(Notice::Event(e)),
        Ok(None) => {}
        Err(e) => tracing::error!(session, error = %e, "cannot record a group change"),
    }
}
