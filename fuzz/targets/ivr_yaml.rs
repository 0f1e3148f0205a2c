//! AFL++ target: `openline::fuzzing::ivr_yaml` on every input.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        openline::fuzzing::ivr_yaml(data);
    });
}
