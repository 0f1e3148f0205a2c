//! The RTP port pool: even ports from `--rtp-ports` (RTCP takes the odd one above, RFC 3550 §11),
//! handed out to calls and returned when they end.
//!
//! A port is drawn at random from the less recently used half of the free ones: an outsider
//! cannot predict a new call's port from the last one (to inject or hijack its media), and a
//! port just given back is not reused while late packets of its old call may still arrive.

use crate::config::PortRange;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;

pub struct PortPool {
    /// Least recently released first.
    free: VecDeque<u16>,
    rng: rand::rngs::StdRng,
}

impl PortPool {
    pub fn new(range: PortRange) -> Self {
        Self::with_rng(range, rand::rngs::StdRng::from_os_rng())
    }

    fn with_rng(range: PortRange, rng: rand::rngs::StdRng) -> Self {
        let first = range.low + range.low % 2;
        let free = (first..range.high).step_by(2).collect();
        PortPool { free, rng }
    }

    pub fn allocate(&mut self) -> Option<u16> {
        if self.free.is_empty() {
            return None;
        }
        let older_half = self.free.len().div_ceil(2);
        let pick = self.rng.random_range(0..older_half);
        self.free.remove(pick)
    }

    pub fn release(&mut self, port: u16) {
        self.free.push_back(port);
    }

    pub fn available(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(low: u16, high: u16, seed: u64) -> PortPool {
        PortPool::with_rng(
            PortRange { low, high },
            rand::rngs::StdRng::seed_from_u64(seed),
        )
    }

    #[test]
    fn even_ports_only_until_none_is_left() {
        let mut pool = pool(20001, 20008, 1);
        assert_eq!(pool.available(), 3);
        let mut got: Vec<u16> = (0..3).map(|_| pool.allocate().unwrap()).collect();
        assert_eq!(pool.allocate(), None);
        got.sort();
        assert_eq!(got, [20002, 20004, 20006]);
        pool.release(20004);
        assert_eq!(pool.allocate(), Some(20004));
    }

    /// Regression (review of 832cd51): ports were handed out in order, so the next call's port
    /// was known from the last one.
    #[test]
    fn the_next_port_cannot_be_told_from_the_last() {
        let mut pool = pool(20000, 30000, 7);
        let ports: Vec<u16> = (0..50).map(|_| pool.allocate().unwrap()).collect();
        let steps_of_two = ports.windows(2).filter(|w| w[1] == w[0] + 2).count();
        assert!(steps_of_two < 5, "{ports:?}");
        let mut distinct = ports.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 50);
    }

    #[test]
    fn a_port_just_given_back_is_not_taken_again_at_once() {
        let mut pool = pool(20000, 20040, 3); // 20 ports
        for _ in 0..200 {
            let port = pool.allocate().unwrap();
            pool.release(port);
            let next = pool.allocate().unwrap();
            assert_ne!(next, port, "reused at once");
            pool.release(next);
        }
    }
}
