//! Whether the system clock is synchronized (NTP or similar), as the kernel sees it.
//!
//! Boards without a battery-backed clock boot in the past; WhatsApp refuses logins and
//! webhook receivers refuse signatures while the clock is wrong, so health reports it.

/// `Some(true)` when the kernel's clock discipline says synchronized, `Some(false)` when it
/// says unsynchronized, `None` when it cannot tell (not Linux, or the call failed).
///
/// Reads `adjtimex(2)` with `modes = 0` (a read; no privilege needed): unsynchronized is the
/// `TIME_ERROR` return or the `STA_UNSYNC` status bit. A daemon that disciplines the clock
/// without telling the kernel (plain `ntpdate`, or `systemd-timesyncd` before its first sync)
/// shows as unsynchronized.
pub fn synced() -> Option<bool> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `timex` is plain old data for which all-zero bytes are valid (modes = 0
        // asks for a read only), and adjtimex writes only into the struct we pass.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::adjtimex(&mut tx) };
        if r < 0 {
            return None;
        }
        Some(r != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The time the webhook forwarder schedules by: the system clock, plus an offset a test can
/// move forward to reach a retry without waiting for it. Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        crate::events::now_ms() + self.offset_ms.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Move this clock `ms` milliseconds ahead of the system clock (tests).
    pub fn advance(&self, ms: i64) {
        self.offset_ms
            .fetch_add(ms, std::sync::atomic::Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn answers_on_linux() {
        #[cfg(target_os = "linux")]
        assert!(super::synced().is_some());
    }
}
