//! AFL++ target: `openline::fuzzing::config` on every input.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        openline::fuzzing::config(data);
    });
}
