//! The session's WebSocket transport behind its [`WireGate`]: every frame whatsapp-rust writes
//! first passes the gate, so nothing encrypted with Signal state from a decrypt reaches
//! WhatsApp before that state is in redb (the gate's module says why).
//!
//! whatsapp-rust writes frames from one task, in order, so holding a frame holds the ones
//! behind it and the noise counters stay in sequence.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use whatsapp_rust::transport::{Transport, TransportEvent, TransportFactory};

use crate::store::wire_gate::{Passage, WireGate};

/// Wraps a transport factory so each transport it makes waits on `gate`.
pub struct GatedTransportFactory<F> {
    inner: F,
    gate: Arc<WireGate>,
}

impl<F> GatedTransportFactory<F> {
    pub fn new(inner: F, gate: Arc<WireGate>) -> Self {
        GatedTransportFactory { inner, gate }
    }
}

#[async_trait]
impl<F: TransportFactory> TransportFactory for GatedTransportFactory<F> {
    async fn create_transport(
        &self,
    ) -> Result<
        (
            Arc<dyn Transport>,
            whatsapp_rust::async_channel::Receiver<TransportEvent>,
        ),
        anyhow::Error,
    > {
        let (inner, events) = self.inner.create_transport().await?;
        let gated = GatedTransport {
            inner,
            gate: Arc::clone(&self.gate),
        };
        Ok((Arc::new(gated), events))
    }
}

struct GatedTransport {
    inner: Arc<dyn Transport>,
    gate: Arc<WireGate>,
}

#[async_trait]
impl Transport for GatedTransport {
    async fn send(&self, data: Bytes) -> Result<(), anyhow::Error> {
        if let Passage::Waited(d) = self.gate.pass().await {
            tracing::trace!(
                wait_us = d.as_micros() as u64,
                "frame held until Signal state was written"
            );
        }
        self.inner.send(data).await
    }

    async fn disconnect(&self) {
        self.inner.disconnect().await
    }

    fn resource_report(&self) -> Option<whatsapp_rust::wacore::stats::TransportResourceReport> {
        self.inner.resource_report()
    }
}
