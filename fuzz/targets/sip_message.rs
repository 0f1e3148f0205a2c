//! AFL++ target: `openline::fuzzing::sip_message` on every input.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        openline::fuzzing::sip_message(data);
    });
}
