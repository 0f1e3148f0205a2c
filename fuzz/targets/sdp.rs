//! AFL++ target: `openline::fuzzing::sdp` on every input.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        openline::fuzzing::sdp(data);
    });
}
