//! Small helpers over `wacore_binary::Node`: attribute access, common
//! server answers (iq result / error, ack) and the XML rendering used in logs
//! and the stanza record.

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeContent, SERVER_JID};

/// A string attribute.
pub fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs.get(key).map(|v| v.as_str().into_owned())
}

/// A JID attribute.
pub fn attr_jid(node: &Node, key: &str) -> Option<Jid> {
    node.attrs.get(key).and_then(|v| v.to_jid())
}

/// Byte content of a node, if any.
pub fn bytes(node: &Node) -> Option<&[u8]> {
    match &node.content {
        Some(NodeContent::Bytes(b)) => Some(b),
        Some(NodeContent::String(s)) => Some(s.as_bytes()),
        _ => None,
    }
}

/// Byte content of a named child.
pub fn child_bytes<'a>(node: &'a Node, tag: &str) -> Option<&'a [u8]> {
    node.get_optional_child(tag).and_then(bytes)
}

/// First child node, if any.
pub fn first_child(node: &Node) -> Option<&Node> {
    node.children().and_then(|c| c.first())
}

/// Big-endian unsigned integer from 1..=4 bytes.
pub fn be_uint(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 4 {
        return None;
    }
    Some(b.iter().fold(0u32, |acc, x| (acc << 8) | u32::from(*x)))
}

/// 32 bytes or nothing.
pub fn key32(b: &[u8]) -> Option<[u8; 32]> {
    b.try_into().ok()
}

/// `<iq type="result" id=.. from="s.whatsapp.net">children</iq>`.
pub fn iq_result(id: &str, children: Vec<Node>) -> Node {
    let b = NodeBuilder::new("iq")
        .attr("type", "result")
        .attr("id", id)
        .attr("from", SERVER_JID);
    if children.is_empty() {
        b.build()
    } else {
        b.children(children).build()
    }
}

/// `<iq type="error" id=..><error code=.. text=../></iq>`.
pub fn iq_error(id: &str, code: u16, text: &str) -> Node {
    NodeBuilder::new("iq")
        .attr("type", "error")
        .attr("id", id)
        .attr("from", SERVER_JID)
        .children([NodeBuilder::new("error")
            .attr("code", code.to_string())
            .attr("text", text)
            .build()])
        .build()
}

/// Renders a node as XML for logs (bytes are shown as hex or text).
pub fn to_xml(node: &Node) -> String {
    wacore::xml::DisplayableNode(node).to_string()
}
