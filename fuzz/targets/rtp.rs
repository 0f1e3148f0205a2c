//! AFL++ target: `openline::fuzzing::rtp` on every input.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        openline::fuzzing::rtp(data);
    });
}
