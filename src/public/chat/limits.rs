//! The chat's rate limits, counted in memory per client address and per
//! visitor (a restart forgets the counts; the limits bound floods, they
//! are not quotas). Each refusal says in words what was exceeded.

use crate::rules::chat::Limits;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Default)]
struct Counts {
    /// (address, UTC day) → conversations opened.
    conversations_by_ip: HashMap<(IpAddr, i64), u32>,
    /// (visitor hash, UTC day) → conversations opened.
    conversations_by_visitor: HashMap<(String, i64), u32>,
    /// visitor hash → (minute, lines in that minute).
    lines: HashMap<String, (i64, u32)>,
    /// address → open streams.
    streams: HashMap<IpAddr, u32>,
}

#[derive(Clone, Default)]
pub struct RateLimits {
    counts: Arc<Mutex<Counts>>,
}

/// A stream slot of one address, given back when dropped.
pub struct StreamSlot {
    limits: RateLimits,
    ip: IpAddr,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut c = self.limits.lock();
        if let Some(n) = c.streams.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.streams.remove(&self.ip);
            }
        }
    }
}

impl RateLimits {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a new conversation of `ip` and `visitor` on the day of `now`.
    pub fn conversation(
        &self,
        limits: &Limits,
        ip: IpAddr,
        visitor: &str,
        now: i64,
    ) -> Result<(), String> {
        let day = now.div_euclid(86_400);
        let mut c = self.lock();
        c.conversations_by_ip.retain(|(_, d), _| *d == day);
        c.conversations_by_visitor.retain(|(_, d), _| *d == day);
        let by_ip = c.conversations_by_ip.get(&(ip, day)).copied().unwrap_or(0);
        if by_ip >= limits.conversations_per_ip_per_day {
            return Err(format!(
                "Too many conversations from your address today (at most {}). Please write to us by mail.",
                limits.conversations_per_ip_per_day
            ));
        }
        let key = (visitor.to_string(), day);
        let by_visitor = c.conversations_by_visitor.get(&key).copied().unwrap_or(0);
        if by_visitor >= limits.conversations_per_visitor_per_day {
            return Err(format!(
                "Too many conversations today (at most {}). Please write to us by mail.",
                limits.conversations_per_visitor_per_day
            ));
        }
        *c.conversations_by_ip.entry((ip, day)).or_default() += 1;
        *c.conversations_by_visitor.entry(key).or_default() += 1;
        Ok(())
    }

    /// Counts a line of `visitor` in the minute of `now`.
    pub fn line(&self, limits: &Limits, visitor: &str, now: i64) -> Result<(), String> {
        let minute = now.div_euclid(60);
        let mut c = self.lock();
        if c.lines.len() > 100_000 {
            c.lines.retain(|_, (m, _)| *m == minute);
        }
        let entry = c.lines.entry(visitor.to_string()).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1 >= limits.messages_per_minute {
            return Err(format!(
                "You are writing too fast (at most {} messages a minute). Please wait a moment.",
                limits.messages_per_minute
            ));
        }
        entry.1 += 1;
        Ok(())
    }

    /// A stream slot for `ip`, if it has fewer than the limit open.
    pub fn stream(&self, limits: &Limits, ip: IpAddr) -> Result<StreamSlot, String> {
        let mut c = self.lock();
        let n = c.streams.entry(ip).or_default();
        if *n >= limits.streams_per_ip {
            return Err(format!(
                "Too many open chats from your address (at most {}).",
                limits.streams_per_ip
            ));
        }
        *n += 1;
        drop(c);
        Ok(StreamSlot {
            limits: self.clone(),
            ip,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_refuses_past_its_count_and_recovers() {
        let limits = Limits {
            conversations_per_ip_per_day: 2,
            conversations_per_visitor_per_day: 1,
            messages_per_minute: 2,
            streams_per_ip: 1,
            ..Limits::default()
        };
        let r = RateLimits::default();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let now = 1_780_000_000;
        r.conversation(&limits, ip, "a", now).unwrap();
        assert!(r.conversation(&limits, ip, "a", now).is_err());
        r.conversation(&limits, ip, "b", now).unwrap();
        assert!(r.conversation(&limits, ip, "c", now).is_err());
        r.conversation(&limits, ip, "c", now + 86_400).unwrap();

        r.line(&limits, "a", now).unwrap();
        r.line(&limits, "a", now).unwrap();
        assert!(r.line(&limits, "a", now).is_err());
        r.line(&limits, "a", now + 60).unwrap();

        let slot = r.stream(&limits, ip).unwrap();
        assert!(r.stream(&limits, ip).is_err());
        drop(slot);
        r.stream(&limits, ip).unwrap();
    }
}
