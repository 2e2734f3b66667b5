//! One WebSocket connection: the Noise handshake, then a reader loop that
//! decrypts frames into nodes for the router and a writer task that encrypts
//! whatever the server queues for this connection.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::mpsc;
use wacore::framing::FrameDecoder;
use waproto::buffa::Message as _;
use waproto::whatsapp as wa;

use crate::error::{Error, Result};
use crate::noise::{self, HelloStep};
use crate::router;
use crate::server::Inner;
use crate::state::{Conn, ConnId, Direction, Outbound};

type WsStream = futures_util::stream::SplitStream<WebSocket>;
type WsSink = futures_util::stream::SplitSink<WebSocket, Message>;

/// Serves one upgraded socket until it closes.
pub async fn serve(inner: Arc<Inner>, socket: WebSocket) {
    let mut conn_id = None;
    if let Err(e) = run(&inner, socket, &mut conn_id).await {
        tracing::debug!(conn = ?conn_id, error = %e, "connection ended with an error");
    }
    if let Some(id) = conn_id {
        let mut st = inner.lock();
        if let Some(c) = st.conns.remove(&id) {
            for r in &c.refs {
                st.refs.remove(r);
            }
            if let Some(mut w) = c.pair_wait
                && let Some(reply) = w.reply.take()
            {
                let _ = reply.send(Err("connection closed".into()));
            }
            // What the client never acked goes to the device again, as WhatsApp redelivers.
            if let Some(dev) = &c.device
                && !c.unacked.is_empty()
            {
                tracing::info!(
                    conn = id,
                    count = c.unacked.len(),
                    "unacked messages kept for redelivery"
                );
                for node in c.unacked {
                    st.deliver(dev, node);
                }
            }
            tracing::info!(conn = id, device = ?c.device.map(|d| d.pn_jid().to_string()), "connection closed");
        }
        drop(st);
        inner.bump();
    }
}

async fn next_binary(stream: &mut WsStream) -> Result<Option<Vec<u8>>> {
    loop {
        match stream.next().await {
            None | Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(Message::Binary(b))) => return Ok(Some(b.to_vec())),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(Error::WebSocket(e.to_string())),
        }
    }
}

async fn next_frame(stream: &mut WsStream, decoder: &mut FrameDecoder) -> Result<Vec<u8>> {
    loop {
        if let Some(f) = decoder.decode_frame() {
            return Ok(f.to_vec());
        }
        let data = next_binary(stream)
            .await?
            .ok_or_else(|| Error::WebSocket("closed during handshake".into()))?;
        decoder.feed(&data);
    }
}

async fn send_raw(sink: &mut WsSink, data: Vec<u8>) -> Result<()> {
    sink.send(Message::Binary(data.into()))
        .await
        .map_err(|e| Error::WebSocket(e.to_string()))
}

async fn run(inner: &Arc<Inner>, socket: WebSocket, conn_id: &mut Option<ConnId>) -> Result<()> {
    let (mut sink, mut stream) = socket.split();
    let mut decoder = FrameDecoder::new();
    let first = next_binary(&mut stream)
        .await?
        .ok_or_else(|| Error::WebSocket("closed before hello".into()))?;
    decoder.feed(noise::strip_conn_header(&first)?);
    let hello = next_frame(&mut stream, &mut decoder).await?;
    let established = match noise::respond_to_hello(&inner.identity, &hello)? {
        HelloStep::Done {
            established,
            server_hello,
        } => {
            send_raw(&mut sink, noise::frame(&server_hello)?).await?;
            *established
        }
        HelloStep::AwaitFinish {
            pending,
            server_hello,
        } => {
            send_raw(&mut sink, noise::frame(&server_hello)?).await?;
            let finish = next_frame(&mut stream, &mut decoder).await?;
            pending.finish(&finish)?
        }
    };
    let payload = wa::ClientPayload::decode_from_slice(&established.payload)
        .map_err(|e| Error::Proto(e.to_string()))?;
    let pattern = established.pattern;
    let (mut reader, mut writer) = established.transport.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outbound>();

    let id = {
        let mut st = inner.lock();
        let id = st.next_conn;
        st.next_conn += 1;
        st.conns.insert(
            id,
            Conn {
                id,
                tx,
                noise_pub: established.client_static,
                device: None,
                active: false,
                registration: None,
                refs: Vec::new(),
                pair_wait: None,
                pair_code: None,
                unacked: Vec::new(),
            },
        );
        tracing::info!(
            conn = id,
            ?pattern,
            login = payload.username.is_some(),
            "handshake complete"
        );
        router::on_established(inner, &mut st, id, &payload);
        id
    };
    *conn_id = Some(id);
    inner.bump();

    let mut writer_freeze = inner.freeze.subscribe();
    let mut writer_task = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            // Frozen: what is queued waits (a close too) until the thaw.
            if writer_freeze.wait_for(|f| !f.holds(id)).await.is_err() {
                break;
            }
            match out {
                Outbound::Node(node) => {
                    let plain = match wacore_binary::marshal(&node) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not encode a stanza");
                            continue;
                        }
                    };
                    let Ok(frame) = writer.seal_frame(&plain) else {
                        break;
                    };
                    if sink.send(Message::Binary(frame.into())).await.is_err() {
                        break;
                    }
                }
                Outbound::Close => {
                    let _ = sink.send(Message::Close(None)).await;
                    let _ = sink.close().await;
                    break;
                }
            }
        }
    });

    let mut freeze = inner.freeze.subscribe();
    loop {
        // Frozen: read nothing (the client's frames wait in the socket) until the thaw.
        if freeze.borrow_and_update().holds(id) {
            tracing::info!(conn = id, "frozen");
            if freeze.wait_for(|f| !f.holds(id)).await.is_err() {
                break;
            }
            tracing::info!(conn = id, "thawed");
        }
        tokio::select! {
            _ = &mut writer_task => break,
            changed = freeze.changed() => if changed.is_err() { break },
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    decoder.feed(&b);
                    while let Some(frame) = decoder.decode_frame() {
                        let plain = reader.decrypt(&frame)?;
                        let unpacked = wacore_binary::util::unpack(&plain)?;
                        let node = wacore_binary::marshal::unmarshal_ref(&unpacked)?.to_owned();
                        tracing::debug!(conn = id, xml = %crate::stanza::to_xml(&node), "<- client");
                        let mut st = inner.lock();
                        st.record(id, Direction::In, &node);
                        router::on_node(inner, &mut st, id, node);
                        drop(st);
                        inner.bump();
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    }
    writer_task.abort();
    Ok(())
}
