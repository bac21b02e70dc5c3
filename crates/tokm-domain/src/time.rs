//! Time: the `Timestamp` newtype and the injected `Clock`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Milliseconds since the Unix epoch (UTC).
///
/// Arithmetic is checked: overflow is `None`, never a wrap. Durations are truncated to whole
/// milliseconds, the resolution of every stored time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// The timestamp `ms` milliseconds after the Unix epoch.
    pub const fn from_millis(ms: u64) -> Timestamp {
        Timestamp(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + duration`, or `None` on overflow.
    pub fn checked_add(self, duration: Duration) -> Option<Timestamp> {
        let ms = u64::try_from(duration.as_millis()).ok()?;
        self.0.checked_add(ms).map(Timestamp)
    }

    /// `self - duration`, or `None` before the epoch.
    pub fn checked_sub(self, duration: Duration) -> Option<Timestamp> {
        let ms = u64::try_from(duration.as_millis()).ok()?;
        self.0.checked_sub(ms).map(Timestamp)
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// The source of "now" for expiry and timestamps; injected so tests control time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// How long a thread waiting for this clock to reach `deadline` should block before it
    /// reads the clock again. Background threads that act on this clock's time (the log's
    /// flusher) wait this long, so their timers follow the injected clock, not the wall.
    ///
    /// The default, right for any clock that follows real time, is the time left (zero once
    /// `deadline` has passed).
    fn wait_hint(&self, deadline: Timestamp) -> Duration {
        deadline.saturating_duration_since(self.now())
    }
}

/// The wall clock. The only place in the workspace that reads system time.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        // A wall clock set before 1970 is a host misconfiguration; reporting the epoch makes
        // every session look expired rather than panicking.
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told to; thread-safe, for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock {
            now_ms: AtomicU64::new(start.0),
        }
    }

    /// Sets the time, also backwards (to test clock skew).
    pub fn set(&self, now: Timestamp) {
        self.now_ms.store(now.0, Ordering::SeqCst);
    }

    /// Moves the time forward by `duration`, saturating at `u64::MAX` ms.
    pub fn advance(&self, duration: Duration) {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .now_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(ms))
            });
    }
}

/// How often a thread waiting for a [`ManualClock`] deadline reads the clock again: a test
/// that advances the clock sees timers fire within about this much real time.
const MANUAL_CLOCK_POLL: Duration = Duration::from_millis(2);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now_ms.load(Ordering::SeqCst))
    }

    /// Time stands still until a test moves it, so the real time left says nothing: poll
    /// every couple of milliseconds until the deadline is reached.
    fn wait_hint(&self, deadline: Timestamp) -> Duration {
        if self.now() >= deadline {
            Duration::ZERO
        } else {
            MANUAL_CLOCK_POLL
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_checked() {
        let max = Timestamp::from_millis(u64::MAX);
        assert_eq!(max.checked_add(Duration::from_millis(1)), None);
        assert_eq!(
            Timestamp::UNIX_EPOCH.checked_sub(Duration::from_millis(1)),
            None
        );
        assert_eq!(
            Timestamp::from_millis(5).checked_add(Duration::from_micros(2_999)),
            Some(Timestamp::from_millis(7))
        );
        assert_eq!(
            Timestamp::from_millis(3).saturating_duration_since(Timestamp::from_millis(9)),
            Duration::ZERO
        );
    }

    #[test]
    fn wait_hints_follow_each_clock() {
        let manual = ManualClock::new(Timestamp::from_millis(1_000));
        assert_eq!(
            manual.wait_hint(Timestamp::from_millis(1_000)),
            Duration::ZERO
        );
        assert_eq!(
            manual.wait_hint(Timestamp::from_millis(900)),
            Duration::ZERO
        );
        assert_eq!(
            manual.wait_hint(Timestamp::from_millis(61_000)),
            MANUAL_CLOCK_POLL,
            "a manual clock is polled, not slept on for a minute"
        );
        let now = SystemClock.now();
        assert!(SystemClock.wait_hint(now) == Duration::ZERO);
        let later = now.checked_add(Duration::from_secs(60)).unwrap();
        assert!(SystemClock.wait_hint(later) <= Duration::from_secs(60));
        assert!(SystemClock.wait_hint(later) > Duration::from_secs(30));
    }

    #[test]
    fn manual_clock_sets_and_advances() {
        let clock = ManualClock::new(Timestamp::from_millis(10));
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now(), Timestamp::from_millis(1_010));
        clock.set(Timestamp::from_millis(4));
        assert_eq!(clock.now(), Timestamp::from_millis(4));
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), Timestamp::from_millis(u64::MAX));
    }

    #[test]
    fn manual_clock_advances_from_many_threads_add_up() {
        let clock = ManualClock::new(Timestamp::UNIX_EPOCH);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1_000 {
                        clock.advance(Duration::from_millis(1));
                    }
                });
            }
        });
        assert_eq!(clock.now(), Timestamp::from_millis(4_000));
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > Timestamp::from_millis(1_577_836_800_000));
    }
}
