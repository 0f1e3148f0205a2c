//! Loader tests: the INTERFACE.md example, and a table of broken files with the exact
//! `file:line:column: message` each must produce.

use super::*;
use crate::ivr::flow::FlowSet;

/// The example flow of the interface contract (INTERFACE.md), verbatim.
pub(crate) const INTERFACE_EXAMPLE: &str = r#"id: main
name: Main menu
entry: welcome
nodes:
  welcome:
    play: welcome.wav              # file in the sounds dir (wav, mp3, ogg, flac)
    next: hours
  hours:
    hours:                         # business hours check
      timezone: Europe/Kyiv
      open: { mon-fri: "09:00-18:00", sat: "10:00-14:00" }
      when_open: menu
      when_closed: closed
  menu:
    menu:
      say: "For sales press 1. For support press 2. To repeat press star."   # text-to-speech
      timeout: 5s
      retries: 3
      options: { "1": sales, "2": support, "*": menu }
      on_invalid: invalid          # optional; default repeats the menu
      on_fail: operator            # after retries are spent
  invalid:
    play: invalid.wav
    next: menu
  sales:
    queue: sales
  support:
    queue: support
  operator:
    dial: "101"                    # an extension, or an external number through a trunk
  closed:
    voicemail: { greeting: closed.wav, max_length: 120s }
"#;

fn any_sound(_: &str) -> bool {
    true
}

fn one(name: &str, text: &str) -> LoadReport {
    load_set(&[(name.to_owned(), text.to_owned())], &any_sound, true)
}

#[test]
fn interface_example_loads() {
    let report = one("main.yaml", INTERFACE_EXAMPLE);
    assert_eq!(report.errors, vec![]);
    assert_eq!(report.warnings, vec![]);
    assert_eq!(report.flows.len(), 1);
    let flow = &report.flows[0];
    assert_eq!(flow.id.as_str(), "main");
    assert_eq!(flow.nodes.len(), 8);
}

#[test]
fn a_flow_is_a_transfer_target_only_when_its_file_says_so() {
    let flow = |top: &str| format!("id: f\n{top}entry: a\nnodes:\n  a:\n    play: a.wav\n");
    let opted_in = one("f.yaml", &flow("transfer: true\n"));
    assert_eq!(opted_in.errors, vec![]);
    assert!(opted_in.flows[0].transfer);
    let silent = one("f.yaml", &flow(""));
    assert!(!silent.flows[0].transfer, "not without saying so");
    let errors: Vec<String> = one("f.yaml", &flow("transfer: please\n"))
        .errors
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("f.yaml:2:11: "), "{errors:?}");
}

#[test]
fn interface_example_without_tts() {
    let report = load_set(
        &[("main.yaml".to_owned(), INTERFACE_EXAMPLE.to_owned())],
        &any_sound,
        false,
    );
    let errors: Vec<String> = report.errors.iter().map(|d| d.to_string()).collect();
    assert_eq!(errors, vec!["main.yaml:16:12: `say` needs a text-to-speech engine and none is available (install espeak-ng, or use `play` with a recorded prompt)".to_owned()]);
    assert!(report.flows.is_empty());
}

/// A small valid flow to break one line at a time.
const BASE: &str = "id: demo
entry: start
nodes:
  start:
    play: hello.wav
    next: done
  done:
    hangup:
";

/// `(what, file text, expected diagnostics)`: every broken file with the exact line it must print.
fn broken_files() -> Vec<(&'static str, String, Vec<&'static str>)> {
    let flow = |nodes: &str| format!("id: demo\nentry: start\nnodes:\n{nodes}");
    vec![
        (
            "yaml syntax",
            "id: demo\nentry: [start\nnodes: {}\n".into(),
            vec!["broken.yaml:3:6: YAML syntax: illegal placement of ':' indicator"],
        ),
        (
            "tab indentation",
            "id: demo\n\tentry: start\n".into(),
            vec!["broken.yaml:1:5: YAML syntax: while scanning a plain scalar, found a tab"],
        ),
        (
            "duplicate node",
            flow("  start:\n    hangup:\n  start:\n    hangup:\n"),
            vec!["broken.yaml:6:3: YAML syntax: duplicate mapping key: start not allowed here"],
        ),
        (
            "empty file",
            "".into(),
            vec!["broken.yaml:1:1: the file is empty: a flow needs `id`, `entry` and `nodes`"],
        ),
        (
            "not a mapping",
            "- a\n- b\n".into(),
            vec!["broken.yaml:1:1: a flow file is a mapping with `id`, `entry` and `nodes`"],
        ),
        (
            "unknown top field",
            format!("{BASE}colour: blue\n"),
            vec![
                "broken.yaml:9:1: unknown field `colour` at the top of a flow (allowed: id, name, transfer, entry, nodes)",
            ],
        ),
        (
            "missing id",
            BASE.replace("id: demo\n", ""),
            vec!["broken.yaml:1:1: missing `id` (the flow's name for routes and goto)"],
        ),
        (
            "bad id",
            BASE.replace("id: demo", "id: my demo"),
            vec![
                "broken.yaml:1:5: bad flow id `my demo`: an id uses letters, digits, `_` and `-` only",
            ],
        ),
        (
            "missing entry",
            BASE.replace("entry: start\n", ""),
            vec!["broken.yaml:1:1: missing `entry` (the name of the first node)"],
        ),
        (
            "dangling entry",
            BASE.replace("entry: start", "entry: strat"),
            vec![
                "broken.yaml:2:8: entry `strat` is not a node of this flow (did you mean `start`?)",
            ],
        ),
        (
            "unknown kind",
            flow("  start:\n    plya: hello.wav\n    next: start\n"),
            vec![
                "broken.yaml:5:5: unknown node kind `plya` (node kinds: play, say, menu, gather, rate, queue, dial, voicemail, hours, goto, set, webhook, hangup)",
            ],
        ),
        (
            "no kind",
            flow("  start:\n    next: start\n"),
            vec![
                "broken.yaml:4:3: node `start` has no node kind (one of: play, say, menu, gather, rate, queue, dial, voicemail, hours, goto, set, webhook, hangup)",
            ],
        ),
        (
            "two kinds",
            flow("  start:\n    play: hello.wav\n    say: hi\n"),
            vec![
                "broken.yaml:6:5: node `start` has two kinds, `play` and `say`; a node has exactly one",
            ],
        ),
        (
            "menu prompt beside",
            flow("  start:\n    menu: { options: { \"1\": start } }\n    play: hello.wav\n"),
            vec![
                "broken.yaml:6:5: node `start` has two kinds, `menu` and `play`; a node has exactly one (the prompt of a `menu` goes inside `menu:`)",
            ],
        ),
        (
            "unknown field",
            flow(
                "  start:\n    menu:\n      play: hello.wav\n      tiemout: 5s\n      options: { \"1\": start }\n",
            ),
            vec![
                "broken.yaml:7:7: unknown field `tiemout` in `menu` node `start` (allowed: play, say, voice, timeout, retries, options, on_invalid, on_fail, barge_in)",
            ],
        ),
        (
            "field twice",
            flow("  start:\n    play: { files: hello.wav, next: start }\n    next: start\n"),
            vec!["broken.yaml:6:5: `next` is given twice in node `start`"],
        ),
        (
            "dangling next",
            BASE.replace("next: done", "next: dnoe"),
            vec![
                "broken.yaml:6:11: `next` of node `start` points to `dnoe`, which is not a node of this flow (did you mean `done`?)",
            ],
        ),
        (
            "dangling option",
            flow("  start:\n    menu:\n      play: hello.wav\n      options: { \"1\": sales }\n"),
            vec![
                "broken.yaml:7:23: option `1` of node `start` points to `sales`, which is not a node of this flow",
            ],
        ),
        (
            "option not dtmf",
            flow(
                "  start:\n    menu:\n      play: hello.wav\n      options: { \"10\": start, E: start, \"*\": start }\n",
            ),
            vec![
                "broken.yaml:7:18: menu option `10` is not a DTMF key: use one of 0-9, *, #, A-D (quote * and #)",
                "broken.yaml:7:31: menu option `E` is not a DTMF key: use one of 0-9, *, #, A-D (quote * and #)",
            ],
        ),
        (
            "missing sound",
            BASE.replace("hello.wav", "missing.wav"),
            vec!["broken.yaml:5:11: sound file `missing.wav` not found in the sounds directory"],
        ),
        (
            "sound outside",
            BASE.replace("hello.wav", "../etc/passwd.wav"),
            vec![
                "broken.yaml:5:11: sound file `../etc/passwd.wav` must be a relative path inside the sounds directory",
            ],
        ),
        (
            "sound format",
            BASE.replace("hello.wav", "hello.aiff"),
            vec![
                "broken.yaml:5:11: sound file `hello.aiff` has an unsupported format (use .wav, .mp3, .ogg or .flac)",
            ],
        ),
        (
            "bad time zone",
            flow(
                "  start:\n    hours:\n      timezone: Europe/Kiev2\n      open: { mon-fri: \"09:00-18:00\" }\n      when_open: start\n      when_closed: start\n",
            ),
            vec![
                "broken.yaml:6:17: unknown time zone `Europe/Kiev2` (use an IANA name like Europe/Kyiv)",
            ],
        ),
        (
            "bad time range",
            flow(
                "  start:\n    hours:\n      timezone: Europe/Kyiv\n      open: { mon-fri: \"09:00-25:00\" }\n      when_open: start\n      when_closed: start\n",
            ),
            vec![
                "broken.yaml:7:24: `09:00-25:00` is not a time range: write \"09:00-18:00\" (24-hour clock, end after start, up to 24:00)",
            ],
        ),
        (
            "backwards range",
            flow(
                "  start:\n    hours:\n      timezone: Europe/Kyiv\n      open: { mon: \"22:00-02:00\" }\n      when_open: start\n      when_closed: start\n",
            ),
            vec![
                "broken.yaml:7:20: `22:00-02:00` ends before it starts: split hours past midnight over two days",
            ],
        ),
        (
            "bad day",
            flow(
                "  start:\n    hours:\n      timezone: Europe/Kyiv\n      open: { monday: \"09:00-18:00\" }\n      when_open: start\n      when_closed: start\n",
            ),
            vec![
                "broken.yaml:7:15: `monday` is not a day: use mon, tue, wed, thu, fri, sat, sun, ranges like mon-fri, lists like \"mon,wed\", or daily",
            ],
        ),
        (
            "day twice",
            flow(
                "  start:\n    hours:\n      timezone: Europe/Kyiv\n      open: { mon-fri: \"09:00-18:00\", fri: \"10:00-12:00\" }\n      when_open: start\n      when_closed: start\n",
            ),
            vec!["broken.yaml:7:39: `fri` is already given by `mon-fri`"],
        ),
        (
            "bad holiday",
            flow(
                "  start:\n    hours:\n      timezone: Europe/Kyiv\n      open: { mon-fri: \"09:00-18:00\" }\n      holidays: [\"2026-12-25\", \"2026-02-30\"]\n      when_open: start\n      when_closed: start\n",
            ),
            vec![
                "broken.yaml:8:32: `2026-02-30` is not a date: write \"2026-12-25\" for one day or \"12-25\" for every year",
            ],
        ),
        (
            "hours missing when_closed",
            flow(
                "  start:\n    hours:\n      timezone: Europe/Kyiv\n      open: { mon-fri: \"09:00-18:00\" }\n      when_open: start\n",
            ),
            vec!["broken.yaml:5:5: `hours` node `start` needs `when_closed`"],
        ),
        (
            "bad duration",
            flow(
                "  start:\n    menu:\n      play: hello.wav\n      timeout: 5\n      options: { \"1\": start }\n",
            ),
            vec![
                "broken.yaml:7:16: `timeout`: `5` is not a duration: write a number with a unit, like 5s, 500ms or 2m",
            ],
        ),
        (
            "bad retries",
            flow(
                "  start:\n    menu:\n      play: hello.wav\n      retries: three\n      options: { \"1\": start }\n",
            ),
            vec!["broken.yaml:7:16: `retries` must be a whole number from 0 to 20, not `three`"],
        ),
        (
            "bad flag",
            flow(
                "  start:\n    menu:\n      play: hello.wav\n      barge_in: maybe\n      options: { \"1\": start }\n",
            ),
            vec!["broken.yaml:7:17: `barge_in` must be true or false, not `maybe`"],
        ),
        (
            "menu without prompt",
            flow("  start:\n    menu:\n      options: { \"1\": start }\n"),
            vec!["broken.yaml:5:5: `menu` node `start` needs a prompt: `play` or `say`"],
        ),
        (
            "gather min over max",
            flow("  start:\n    gather: { var: pin, min_digits: 5, max_digits: 4, next: start }\n"),
            vec!["broken.yaml:5:5: `min_digits` (5) is more than `max_digits` (4)"],
        ),
        (
            "gather bad var",
            flow("  start:\n    gather: { var: 1pin, max_digits: 4, next: start }\n"),
            vec![
                "broken.yaml:5:20: `var`: `1pin` is not a variable name (letters, digits and `_`, not starting with a digit)",
            ],
        ),
        (
            "bad template",
            flow("  start:\n    say: \"Hello ${name\"\n"),
            vec!["broken.yaml:5:10: `say`: `${` without a closing `}`"],
        ),
        (
            "webhook url",
            flow("  start:\n    webhook: ftp://example.com/x\n    next: start\n"),
            vec!["broken.yaml:5:14: webhook `url` must start with http:// or https://"],
        ),
        (
            "webhook reserved body",
            flow(
                "  start:\n    webhook:\n      url: http://127.0.0.1/x\n      body: { flow: x }\n      next: start\n",
            ),
            vec![
                "broken.yaml:7:15: body field `flow` is reserved (every request has flow, node and variables)",
            ],
        ),
        (
            "bad dial target",
            flow("  start:\n    dial: \"10 1\"\n"),
            vec![
                "broken.yaml:5:11: `10 1` is not an extension or number to dial (letters, digits, + * # . _ -)",
            ],
        ),
        (
            "set bad name",
            flow("  start:\n    set: { 9lives: x }\n    next: start\n"),
            vec![
                "broken.yaml:5:12: `9lives` is not a variable name (letters, digits and `_`, not starting with a digit)",
            ],
        ),
        (
            "hangup with value",
            flow("  start:\n    hangup: now\n"),
            vec!["broken.yaml:5:13: `hangup` takes no value: write `hangup:` or `hangup: {}`"],
        ),
        (
            "goto unknown flow",
            flow("  start:\n    goto: mian\n"),
            vec![
                "broken.yaml:5:11: `goto` names flow `mian`, which is not loaded (did you mean `main`?)",
            ],
        ),
        (
            "bad skill name",
            flow("  start:\n    queue: { name: sales, skills: [ukrainian, \"bil ling\"] }\n"),
            vec!["broken.yaml:5:47: skill `bil ling` must be letters, digits, `_` and `-`"],
        ),
        (
            "skill twice",
            flow("  start:\n    queue: sales\n    skills: [billing, billing]\n"),
            vec!["broken.yaml:6:23: skill `billing` is listed twice"],
        ),
        (
            "priority out of range",
            flow("  start:\n    queue: sales\n    priority: 5000\n"),
            vec!["broken.yaml:6:15: `priority` must be from -1000 to 1000, not 5000"],
        ),
        (
            "quoted priority out of range",
            flow("  start:\n    queue: sales\n    priority: \"5000\"\n"),
            vec!["broken.yaml:6:15: `priority` must be from -1000 to 1000, not 5000"],
        ),
        (
            "priority as words",
            flow("  start:\n    queue: sales\n    priority: high\n"),
            vec![
                "broken.yaml:6:15: `priority` must be a whole number or `${variable}`, not `high`",
            ],
        ),
        (
            "nodes not a mapping",
            "id: demo\nentry: start\nnodes: [start]\n".into(),
            vec!["broken.yaml:3:8: `nodes` must be a mapping of node names to nodes, not a list"],
        ),
    ]
}

#[test]
fn broken_files_print_the_exact_line() {
    let sounds = |f: &str| f == "hello.wav" || f.starts_with("ok");
    let mut failures = Vec::new();
    for (what, text, expected) in broken_files() {
        let main = (
            "main.yaml".to_owned(),
            "id: main\nentry: a\nnodes:\n  a:\n    hangup:\n".to_owned(),
        );
        let report = load_set(
            &[("broken.yaml".to_owned(), text.clone()), main],
            &sounds,
            true,
        );
        let got: Vec<String> = report.errors.iter().map(|d| d.to_string()).collect();
        if got != expected {
            failures.push(format!(
                "{what}:\n  got:      {got:?}\n  expected: {expected:?}"
            ));
        }
        assert!(
            report.flows.iter().all(|f| f.id.as_str() != "demo"),
            "{what}: a broken file gave a flow"
        );
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn texts(report: &LoadReport) -> (Vec<String>, Vec<String>) {
    (
        report.errors.iter().map(|d| d.to_string()).collect(),
        report.warnings.iter().map(|d| d.to_string()).collect(),
    )
}

#[test]
fn across_files_ids_and_gotos() {
    let files = [
        (
            "a.yaml",
            "id: main\nentry: a\nnodes:\n  a:\n    goto: { flow: rating, node: ask }\n",
        ),
        ("b.yaml", "id: main\nentry: a\nnodes:\n  a:\n    hangup:\n"),
        (
            "c.yaml",
            "id: rating\nentry: ask\nnodes:\n  ask:\n    goto: { flow: main, node: nope }\n",
        ),
        // Broken, but its id is known: flows pointing at it are not broken too.
        (
            "d.yaml",
            "id: broken\nentry: x\nnodes:\n  x:\n    plya: y\n",
        ),
        (
            "e.yaml",
            "id: user\nentry: a\nnodes:\n  a:\n    goto: broken\n",
        ),
    ];
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    let report = load_set(&files, &any_sound, true);
    let (errors, warnings) = texts(&report);
    assert_eq!(
        errors,
        vec![
            "b.yaml:1:5: duplicate flow id `main` (also in a.yaml)",
            "c.yaml:5:31: `goto` names node `nope`, which is not a node of flow `main`",
            "d.yaml:5:5: unknown node kind `plya` (node kinds: play, say, menu, gather, rate, queue, dial, voicemail, hours, goto, set, webhook, hangup)",
        ]
    );
    assert_eq!(warnings, Vec::<String>::new());
    let ids: Vec<&str> = report.flows.iter().map(|f| f.id.as_str()).collect();
    // `a` points at `rating`, whose file failed: its node could not be checked, so it stays.
    assert_eq!(ids, vec!["main", "user"]);
    assert_eq!(report.files.len(), 5);
}

#[test]
fn unreachable_nodes_are_warnings() {
    let text = "id: w\nentry: a\nnodes:\n  a:\n    play: hello.wav\n  lost:\n    hangup:\n  alsolost:\n    play: hello.wav\n    next: lost\n";
    let report = one("w.yaml", text);
    let (errors, warnings) = texts(&report);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        warnings,
        vec![
            "w.yaml:8:3: node `alsolost` is never reached from the entry `a`",
            "w.yaml:6:3: node `lost` is never reached from the entry `a`",
        ]
    );
    assert_eq!(report.flows.len(), 1, "warnings do not stop a flow");
}

#[test]
fn a_webhook_without_choices_may_reach_any_node() {
    let free =
        "id: w\nentry: a\nnodes:\n  a:\n    webhook: http://127.0.0.1/x\n  b:\n    hangup:\n";
    assert!(one("w.yaml", free).warnings.is_empty());
    let listed = "id: w\nentry: a\nnodes:\n  a:\n    webhook: { url: \"http://127.0.0.1/x\", choices: [b] }\n  b:\n    hangup:\n  c:\n    hangup:\n";
    let (_, warnings) = texts(&one("w.yaml", listed));
    assert_eq!(
        warnings,
        vec!["w.yaml:8:3: node `c` is never reached from the entry `a`"]
    );
}

#[test]
fn short_and_long_forms_mean_the_same() {
    let short = "id: f\nentry: a\nnodes:\n  a:\n    say: Hello\n    voice: en-us\n    next: b\n  b:\n    dial: \"101\"\n    on_fail: c\n  c:\n    hangup:\n";
    let long = "id: f\nentry: a\nnodes:\n  a:\n    say: { text: Hello, voice: en-us, next: b }\n  b:\n    dial: { to: \"101\", on_fail: c }\n  c:\n    hangup: {}\n";
    let (a, b) = (one("s.yaml", short), one("l.yaml", long));
    assert!(
        a.errors.is_empty() && b.errors.is_empty(),
        "{:?} {:?}",
        a.errors,
        b.errors
    );
    assert_eq!(a.flows[0].nodes, b.flows[0].nodes);
}

#[test]
fn yaml_quirks_do_not_change_names_or_keys() {
    // `no` and `on` stay node names, `01` is not the number 1, `0` is a key.
    let text = "id: q\nentry: m\nnodes:\n  m:\n    menu:\n      play: hello.wav\n      options: { 1: \"no\", 0: on }\n  \"no\":\n    hangup:\n  on:\n    hangup:\n";
    let report = one("q.yaml", text);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let bad = text.replace("0: on", "01: on");
    let (errors, _) = texts(&one("q.yaml", &bad));
    assert_eq!(
        errors,
        vec![
            "q.yaml:7:27: menu option `01` is not a DTMF key: use one of 0-9, *, #, A-D (quote * and #)"
        ]
    );
}

#[test]
fn load_dir_reads_yaml_files_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.yaml"), INTERFACE_EXAMPLE).unwrap();
    std::fs::write(dir.path().join("broken.yml"), "id: [\n").unwrap();
    std::fs::write(dir.path().join(".main.yaml.swp"), "junk").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "junk").unwrap();
    let report = load_dir(dir.path(), &any_sound, true);
    assert_eq!(report.flows.len(), 1);
    assert_eq!(report.files.len(), 2);
    assert_eq!(report.errors.len(), 1);
    let e = &report.errors[0];
    assert!(
        e.file.ends_with("broken.yml") && e.message.starts_with("YAML syntax"),
        "{e}"
    );
}

#[test]
fn a_broken_edit_keeps_the_old_flow() {
    let good = ("main.yaml".to_owned(), INTERFACE_EXAMPLE.to_owned());
    let other = (
        "other.yaml".to_owned(),
        "id: other\nentry: a\nnodes:\n  a:\n    hangup:\n".to_owned(),
    );
    let first = FlowSet::new(load_set(&[good.clone(), other.clone()], &any_sound, true).flows);
    assert_eq!(first.len(), 2);
    let old = first.get("main").unwrap().clone();

    // main.yaml broken, other.yaml deleted.
    let broken = (
        "main.yaml".to_owned(),
        INTERFACE_EXAMPLE.replace("next: hours", "next: hourz"),
    );
    let report = load_set(&[broken], &any_sound, true);
    assert_eq!(report.errors.len(), 1);
    let second = first.reload(&report);
    assert_eq!(second.len(), 1);
    assert!(std::sync::Arc::ptr_eq(second.get("main").unwrap(), &old));

    // Fixed: the new version replaces the old.
    let fixed = (
        "main.yaml".to_owned(),
        INTERFACE_EXAMPLE.replace("retries: 3", "retries: 1"),
    );
    let third = second.reload(&load_set(&[fixed], &any_sound, true));
    assert!(!std::sync::Arc::ptr_eq(third.get("main").unwrap(), &old));
}

#[test]
fn columns_count_characters() {
    let text = "id: u\nentry: a\nnodes:\n  a: { say: \"Привіт, світ\", nxt: a }\n";
    let (errors, _) = texts(&one("u.yaml", text));
    assert_eq!(
        errors,
        vec!["u.yaml:4:29: unknown field `nxt` in `say` node `a` (allowed: text, voice, next)"]
    );
}

/// Every prefix and every one-line deletion of a valid file loads or fails cleanly: admins save
/// half-written files, and nothing in them may panic the server.
#[test]
fn mangled_files_never_panic() {
    let text = INTERFACE_EXAMPLE;
    let mut variants: Vec<String> = text
        .char_indices()
        .map(|(i, _)| text[..i].to_owned())
        .collect();
    let lines: Vec<&str> = text.lines().collect();
    for skip in 0..lines.len() {
        let kept: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, l)| *l)
            .collect();
        variants.push(kept.join("\n"));
        variants.push(text.replacen(lines[skip].trim(), "x: [", 1));
    }
    for v in &variants {
        let report = one("m.yaml", v);
        for d in &report.errors {
            assert!(d.line >= 1 && d.column >= 1, "{d}");
        }
        assert!(report.flows.len() + usize::from(!report.errors.is_empty()) == 1);
    }
}

#[test]
fn a_queue_node_takes_skills_and_a_priority_number_or_variable() {
    let text = "id: main\nentry: a\nnodes:\n  a:\n    queue: { name: sales, skills: [ukrainian, billing], priority: 10 }\n  \
                b:\n    queue: sales\n    skills: billing\n    priority: \"${vip}\"\n";
    let report = one("main.yaml", text);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let flow = &report.flows[0];
    let node = |name: &str| &flow.nodes[&crate::ivr::flow::NodeId::new(name).unwrap()];
    let crate::ivr::flow::NodeKind::Queue {
        skills, priority, ..
    } = node("a")
    else {
        panic!("a queue node");
    };
    assert_eq!(skills, &["ukrainian", "billing"]);
    assert_eq!(
        priority.as_ref().and_then(|p| p.as_literal()).as_deref(),
        Some("10")
    );
    let crate::ivr::flow::NodeKind::Queue {
        skills, priority, ..
    } = node("b")
    else {
        panic!("a queue node");
    };
    assert_eq!(skills, &["billing"]);
    let vars = std::collections::BTreeMap::from([("vip".to_string(), "20".to_string())]);
    assert_eq!(priority.as_ref().unwrap().render(&vars), "20");
}
