//! AFL++ target: `openline::fuzzing::digest` on every input.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        openline::fuzzing::digest(data);
    });
}
