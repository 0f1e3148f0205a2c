//! AFL++ target: `openline::fuzzing::http_json` on every input.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        openline::fuzzing::http_json(data);
    });
}
