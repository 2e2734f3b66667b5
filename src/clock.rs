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
/// move forward to reach a retry without waiting for it; and whether that clock is
/// synchronized: the kernel's answer ([`synced`]) unless a test set it. Clones share both.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// 0: ask the kernel; 1: synchronized; 2: not synchronized; 3: unknown.
    sync: std::sync::Arc<std::sync::atomic::AtomicU8>,
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

    /// Whether this clock is synchronized: as [`synced`], or as a test set it.
    pub fn synced(&self) -> Option<bool> {
        match self.sync.load(std::sync::atomic::Ordering::Acquire) {
            1 => Some(true),
            2 => Some(false),
            3 => None,
            _ => synced(),
        }
    }

    /// Answer `synced` as given instead of asking the kernel (tests: a board that boots
    /// unsynchronized, then its NTP client sets the clock).
    pub fn set_synced(&self, state: Option<bool>) {
        let v = match state {
            Some(true) => 1,
            Some(false) => 2,
            None => 3,
        };
        self.sync.store(v, std::sync::atomic::Ordering::Release);
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
