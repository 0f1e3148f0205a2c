//! Places counted in total and per source address: SIP TCP connections, HTTP connections and
//! HTTP requests in progress use it, so a peer that opens without end cannot take every file
//! descriptor or worker. Each admitted one holds a `ConnectionSlot`; dropping it gives the place
//! back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct TcpLimits {
    inner: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_source: usize,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// Why a connection was not taken (the metric's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NodeFull,
    SourceFull,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NodeFull => "node_full",
            Refusal::SourceFull => "source_full",
        }
    }
}

/// One open connection's place.
#[derive(Debug)]
pub struct ConnectionSlot {
    limits: TcpLimits,
    source: IpAddr,
}

impl TcpLimits {
    pub fn new(max_total: usize, max_per_source: usize) -> TcpLimits {
        TcpLimits {
            inner: Arc::default(),
            max_total,
            max_per_source,
        }
    }

    /// A place for a connection from `source`, or why there is none.
    pub fn admit(&self, source: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let mut counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= self.max_total {
            return Err(Refusal::NodeFull);
        }
        let from_source = counts.by_source.entry(source).or_default();
        if *from_source >= self.max_per_source {
            return Err(Refusal::SourceFull);
        }
        *from_source += 1;
        counts.total += 1;
        Ok(ConnectionSlot {
            limits: self.clone(),
            source,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.limits.inner.lock().unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                counts.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_per_source_and_in_total_and_given_back_on_drop() {
        let limits = TcpLimits::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::SourceFull);
        let _b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refusal::NodeFull);
        drop(a1);
        assert_eq!(limits.open(), 2);
        let _a3 = limits.admit(a).expect("a's place came back");
        assert_eq!(limits.admit(b).unwrap_err(), Refusal::NodeFull);
    }
}
