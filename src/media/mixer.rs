//! Two streams of decoded audio summed into one, for a supervisor who hears both sides of a call
//! and the parties a whisper or a barge-in adds a voice to.
//!
//! Inputs arrive as the media sessions release them (`Heard`: samples at call-clock positions,
//! already past the jitter wait), in runs that do not line up; the mixer keeps each input from its
//! next output position and releases the mix as far as both inputs reach. An input that falls
//! more than `max_lag` behind the other (a muted phone sends nothing) is taken as silence, so the
//! other side is never held up by it. A silence on both sides longer than [`KEPT_SILENCE`] is
//! skipped rather than kept as zeros (an hour of a muted call would be an hour of samples): the
//! mix resumes a second after what was buffered, both inputs still lined up. Sans-IO: positions
//! in, samples out.

use std::collections::VecDeque;

/// The longest silence (both inputs quiet) the mix keeps: 1 s at 8 kHz.
pub const KEPT_SILENCE: u64 = 8000;

pub struct Mixer {
    /// The call-clock position of the next sample out.
    next: u64,
    inputs: [VecDeque<i16>; 2],
    max_lag: u64,
}

impl Mixer {
    /// A mixer whose output starts at position `start`.
    pub fn new(start: u64, max_lag: u64) -> Mixer {
        Mixer {
            next: start,
            inputs: [VecDeque::new(), VecDeque::new()],
            max_lag,
        }
    }

    /// Audio of input `which` (0 or 1) from position `at`; what lies before the output position
    /// is too late and dropped, a gap before `at` is silence.
    pub fn push(&mut self, which: usize, at: u64, samples: &[i16]) {
        if which > 1 {
            return;
        }
        let buffered = self.inputs.iter().map(VecDeque::len).max().unwrap_or(0) as u64;
        let furthest = self.next + buffered;
        if at > furthest + KEPT_SILENCE {
            // Both sides were quiet: skip the silence, keeping a second of it. What is buffered
            // moves up with the output position, so the inputs stay lined up.
            self.next += at - furthest - KEPT_SILENCE;
        }
        let input = &mut self.inputs[which];
        let end = self.next + input.len() as u64;
        let skip = end.saturating_sub(at) as usize;
        if skip >= samples.len() {
            return; // all of it already there, or already mixed
        }
        let gap = at.saturating_sub(end) as usize;
        input.extend(std::iter::repeat_n(0, gap));
        input.extend(&samples[skip..]);
    }

    /// The position of the first sample [`Mixer::pull`] returns next.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The mix as far as both inputs reach (or as far as the ahead one, less `max_lag`, when the
    /// other lags behind more than that); saturating, so two loud voices clip rather than wrap.
    pub fn pull(&mut self) -> Vec<i16> {
        let [a, b] = [self.inputs[0].len() as u64, self.inputs[1].len() as u64];
        let ready = a.min(b).max(a.max(b).saturating_sub(self.max_lag)) as usize;
        let mut out = Vec::with_capacity(ready);
        for _ in 0..ready {
            let x = self.inputs[0].pop_front().unwrap_or(0);
            let y = self.inputs[1].pop_front().unwrap_or(0);
            out.push(x.saturating_add(y));
        }
        self.next += ready as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{KEPT_SILENCE, Mixer};

    #[test]
    fn two_inputs_are_summed_where_both_reached() {
        let mut m = Mixer::new(1000, 800);
        m.push(0, 1000, &[1, 2, 3, 4]);
        assert_eq!(m.pull(), Vec::<i16>::new(), "waits for the other input");
        m.push(1, 1000, &[10, 20]);
        assert_eq!(m.pull(), vec![11, 22]);
        assert_eq!(m.position(), 1002);
        m.push(1, 1002, &[30, 40, 50]);
        assert_eq!(m.pull(), vec![33, 44]);
        m.push(0, 1004, &[5]);
        assert_eq!(m.pull(), vec![55]);
    }

    /// One push: which input, at what position, what samples.
    type Push = (usize, u64, &'static [i16]);

    #[test]
    fn late_audio_is_dropped_gaps_are_silence_and_a_silent_input_does_not_hold_the_other_up() {
        let table: &[(&str, &[Push], Vec<i16>)] = &[
            (
                "before the start: dropped",
                &[(0, 990, &[9; 12]), (1, 1000, &[1, 1])],
                vec![10, 10],
            ),
            (
                "a gap is silence",
                &[(0, 1002, &[5]), (1, 1000, &[1, 1, 1])],
                vec![1, 1, 6],
            ),
            (
                "overlap counts once",
                &[
                    (0, 1000, &[1, 1]),
                    (0, 1001, &[7, 2]),
                    (1, 1000, &[0, 0, 0]),
                ],
                vec![1, 1, 2],
            ),
            (
                "saturates",
                &[(0, 1000, &[i16::MAX]), (1, 1000, &[1])],
                vec![i16::MAX],
            ),
        ];
        for (name, pushes, expected) in table {
            let mut m = Mixer::new(1000, 800);
            for (which, at, samples) in *pushes {
                m.push(*which, *at, samples);
            }
            assert_eq!(&m.pull(), expected, "{name}");
        }
        // An hour of silence on both sides: a second of it is kept, and the inputs after it
        // still line up.
        let mut m = Mixer::new(0, 4);
        m.push(0, 0, &[1, 1]);
        m.push(1, 0, &[2, 2]);
        let hour = 8000 * 3600;
        m.push(0, hour, &[10]);
        m.push(1, hour, &[20]);
        let out = m.pull();
        assert_eq!(
            out.len() as u64,
            2 + KEPT_SILENCE + 1,
            "not an hour of zeros"
        );
        assert_eq!((out[0], out[out.len() - 1]), (3, 30));
        assert!(out[2..out.len() - 1].iter().all(|&x| x == 0));
        // Input 1 sends nothing: input 0 comes out once it is `max_lag` ahead, over silence.
        let mut m = Mixer::new(0, 4);
        m.push(0, 0, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(m.pull(), vec![1, 2]);
        m.push(1, 0, &[100; 2]);
        assert_eq!(m.pull(), Vec::<i16>::new(), "its late audio is dropped");
        m.push(1, 2, &[100; 4]);
        assert_eq!(m.pull(), vec![103, 104, 105, 106]);
    }
}
