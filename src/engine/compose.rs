//! The message kinds of the send API -> protocol messages. (Placeholder with `text` only; the
//! full set is being written on its own branch and replaces this file.)

use serde::{Deserialize, Serialize};
use whatsapp_rust::download::MediaType;
use whatsapp_rust::upload::UploadResponse;
use whatsapp_rust::waproto::whatsapp as wa;

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("unknown message kind '{0}'")]
    UnknownKind(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Outgoing {
    pub to: String,
    pub content: Content,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    Text { text: String },
}

#[derive(Debug, Clone)]
pub struct UploadedMedia {
    pub upload: UploadResponse,
}

impl UploadedMedia {
    pub fn from_upload(upload: UploadResponse, _content: &Content) -> Self {
        UploadedMedia { upload }
    }
}

pub fn media_type(_content: &Content) -> Option<MediaType> {
    None
}

pub fn build(
    content: &Content,
    _media: Option<&UploadedMedia>,
) -> Result<wa::Message, ComposeError> {
    match content {
        Content::Text { text } => Ok(wa::Message {
            conversation: Some(text.clone()),
            ..Default::default()
        }),
    }
}
