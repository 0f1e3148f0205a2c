//! The RTP port pool: even ports from `--rtp-ports` (RTCP takes the odd one above, RFC 3550 §11),
//! handed out to calls and returned when they end.

use crate::config::PortRange;
use std::collections::VecDeque;

pub struct PortPool {
    free: VecDeque<u16>,
}

impl PortPool {
    pub fn new(range: PortRange) -> Self {
        let first = range.low + range.low % 2;
        let free = (first..range.high).step_by(2).collect();
        PortPool { free }
    }

    /// The least recently used free port, so a port is not reused while late packets may still arrive.
    pub fn allocate(&mut self) -> Option<u16> {
        self.free.pop_front()
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

    #[test]
    fn even_ports_round_robin() {
        let mut pool = PortPool::new(PortRange {
            low: 20001,
            high: 20008,
        });
        assert_eq!(pool.available(), 3);
        let a = pool.allocate().unwrap();
        assert_eq!(a, 20002);
        pool.release(a);
        assert_eq!(pool.allocate(), Some(20004));
        assert_eq!(pool.allocate(), Some(20006));
        assert_eq!(pool.allocate(), Some(20002));
        assert_eq!(pool.allocate(), None);
    }
}
