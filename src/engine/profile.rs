//! The session's own profile: its push name (the name contacts see), its about text and its
//! profile picture, read from and set on WhatsApp.

use serde::Serialize;
use whatsapp_rust::Client;

use super::EngineError;

/// WhatsApp's longest push name, in characters.
pub const MAX_PUSH_NAME: usize = 25;
/// WhatsApp's longest about text, in characters.
pub const MAX_ABOUT: usize = 139;
/// The largest profile picture taken (a 640x640 JPEG is far below it).
pub const MAX_PICTURE_BYTES: usize = 1024 * 1024;

/// What the session's account shows of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnProfile {
    /// `<digits>@s.whatsapp.net`.
    pub phone: Option<String>,
    /// `<digits>@lid`.
    pub lid: Option<String>,
    pub push_name: String,
    /// The about text, when it has one.
    pub about: Option<String>,
    /// Where its profile picture can be downloaded (the URL expires), when it has one.
    pub picture_url: Option<String>,
    /// The picture's id, when it has one: it changes with the picture.
    pub picture_id: Option<String>,
}

/// What to change; `None` leaves it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChange {
    pub push_name: Option<String>,
    pub about: Option<String>,
    /// `Some(None)` removes the picture; `Some(Some(jpeg))` sets it.
    pub picture: Option<Option<Vec<u8>>>,
}

impl ProfileChange {
    /// Refuse what WhatsApp would, naming the field.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: String| Err(EngineError::Profile(m));
        if let Some(n) = &self.push_name {
            let len = n.chars().count();
            if n.trim().is_empty() || len > MAX_PUSH_NAME {
                return bad(format!(
                    "push_name: 1 to {MAX_PUSH_NAME} characters, not only spaces ({len} given)"
                ));
            }
        }
        if let Some(a) = &self.about {
            let len = a.chars().count();
            if len > MAX_ABOUT {
                return bad(format!(
                    "about: at most {MAX_ABOUT} characters ({len} given)"
                ));
            }
        }
        if let Some(Some(jpeg)) = &self.picture {
            if !jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) {
                return bad("picture: a JPEG image is needed".into());
            }
            if jpeg.len() > MAX_PICTURE_BYTES {
                return bad(format!(
                    "picture: {} bytes, at most {MAX_PICTURE_BYTES}",
                    jpeg.len()
                ));
            }
        }
        if self == &ProfileChange::default() {
            return bad("give push_name, about or picture".into());
        }
        Ok(())
    }
}

fn client_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Client(e.to_string())
}

/// The account's profile as WhatsApp has it.
pub(crate) async fn read(client: &Client) -> Result<OwnProfile, EngineError> {
    let phone = client.pn().map(|j| j.to_non_ad());
    let mut out = OwnProfile {
        phone: phone.as_ref().map(ToString::to_string),
        lid: client.lid().map(|j| j.to_non_ad().to_string()),
        push_name: client.push_name(),
        about: None,
        picture_url: None,
        picture_id: None,
    };
    let Some(me) = phone else {
        return Ok(out);
    };
    let info = client
        .contacts()
        .get_user_info(std::slice::from_ref(&me))
        .await
        .map_err(client_err)?;
    if let Some(u) = info.values().next() {
        out.about = u.status.clone().filter(|t| !t.is_empty());
    }
    if let Some(p) = client
        .contacts()
        .get_profile_picture(&me, false)
        .await
        .map_err(client_err)?
    {
        out.picture_url = Some(p.url);
        out.picture_id = Some(p.id);
    }
    Ok(out)
}

/// Set the push name (sent as a presence without a type, then synced to the account).
pub(crate) async fn set_name(client: &Client, name: &str) -> Result<(), EngineError> {
    client
        .profile()
        .set_push_name(name)
        .await
        .map_err(client_err)
}

/// Apply the rest of a (validated) change, about then picture; the first refusal stops it
/// and is returned.
pub(crate) async fn change_rest(client: &Client, ch: &ProfileChange) -> Result<(), EngineError> {
    let profile = client.profile();
    if let Some(about) = &ch.about {
        profile.set_status_text(about).await.map_err(client_err)?;
    }
    match &ch.picture {
        Some(Some(jpeg)) => {
            profile
                .set_profile_picture(jpeg.clone())
                .await
                .map_err(client_err)?;
        }
        Some(None) => {
            profile.remove_profile_picture().await.map_err(client_err)?;
        }
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_checked_field_by_field() {
        let ok = ProfileChange {
            push_name: Some("Bob's Bikes".into()),
            ..ProfileChange::default()
        };
        assert!(ok.validate().is_ok());
        let long = ProfileChange {
            push_name: Some("x".repeat(26)),
            ..ProfileChange::default()
        };
        assert!(
            long.validate()
                .unwrap_err()
                .to_string()
                .starts_with("push_name")
        );
        let about = ProfileChange {
            about: Some("y".repeat(140)),
            ..ProfileChange::default()
        };
        assert!(
            about
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("about")
        );
        let png = ProfileChange {
            picture: Some(Some(b"\x89PNG\r\n".to_vec())),
            ..ProfileChange::default()
        };
        assert!(png.validate().unwrap_err().to_string().contains("JPEG"));
        let remove = ProfileChange {
            picture: Some(None),
            ..ProfileChange::default()
        };
        assert!(remove.validate().is_ok());
        assert!(
            ProfileChange::default().validate().is_err(),
            "nothing to change"
        );
        let empty_about = ProfileChange {
            about: Some(String::new()),
            ..ProfileChange::default()
        };
        assert!(empty_about.validate().is_ok(), "an empty about clears it");
    }
}
