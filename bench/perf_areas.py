#!/usr/bin/env python3
"""Reads `perf script -F comm,ip,sym` (call graphs) on stdin and prints where the server's samples go:
named areas (a sample counts in every area its stack passes through, so areas overlap), then the
functions of the server and of the kernel with the largest inclusive share.

    perf script -i perf.data -F comm,ip,sym | python3 bench/perf_areas.py media|ivr|queue
"""
import re
import sys
from collections import Counter

mode = sys.argv[1] if len(sys.argv) > 1 else "media"
samples, cur = [], None
for line in sys.stdin:
    if not line.strip():
        continue
    if not line[0].isspace():
        if cur:
            samples.append(cur)
        cur = [line.strip()]
    else:
        parts = line.split(None, 1)
        cur.append(parts[1].strip() if len(parts) > 1 else parts[0])
if cur:
    samples.append(cur)
n = len(samples) or 1


def has(s, pat):
    return any(pat in f for f in s[1:])


def self_has(s, *pats):
    return len(s) > 1 and any(p in s[1] for p in pats)


def sqlx(s):
    return s[0].startswith("sqlx-sqlite")


call = lambda s: has(s, "call_task::run")
areas = [
    ("call tasks (runtime::call_task::run)", call),
    ("  MediaSession::handle_timeout (pacing tick)", lambda s: has(s, "MediaSession::handle_timeout")),
    ("    send_frame (frame + G.711 encode + RTP packet)", lambda s: has(s, "MediaSession::send_frame")),
    ("    play_out (jitter buffer to recorder/DTMF)", lambda s: has(s, "MediaSession::play_out")),
    ("  MediaSession::on_rtp (incoming packet)", lambda s: has(s, "MediaSession::on_rtp")),
    ("  DTMF detection (dtmf::)", lambda s: call(s) and has(s, "dtmf::")),
    ("  recorder (StereoRecorder, hound)", lambda s: call(s) and (has(s, "recorder::") or has(s, "hound::"))),
    ("    write(2) from the recorder", lambda s: call(s) and has(s, "recorder::") and has(s, "ksys_write")),
    ("  Task::on_media_event", lambda s: has(s, "on_media_event")),
    ("  sendto (RTP/RTCP out)", lambda s: call(s) and has(s, "sendto")),
    ("  recvfrom (RTP in)", lambda s: call(s) and has(s, "recvfrom")),
    ("  tokio timers (sleep_until, timer wheel)", lambda s: call(s) and has(s, "tokio::runtime::time")),
    ("  IVR engine (ivr::)", lambda s: call(s) and has(s, "openline::ivr::")),
    ("  prompt loading (ivr_io, prompt cache)", lambda s: has(s, "ivr_io::") or has(s, "prompt::cache")),
    ("tokio timer driver (process timers, outside tasks)", lambda s: not call(s) and has(s, "tokio::runtime::time")),
    ("tokio scheduler/park (epoll_wait, park, unpark)", lambda s: not call(s) and (has(s, "park") or has(s, "epoll_wait"))),
    ("SIP task (SipTask::run)", lambda s: has(s, "SipTask::run")),
    ("  Endpoint::handle_packet", lambda s: has(s, "Endpoint::handle_packet")),
    ("  incoming_call", lambda s: has(s, "incoming_call")),
    ("  starting a call task (calls::, bind sockets)", lambda s: has(s, "SipTask::run") and has(s, "runtime::calls::")),
    ("  queues and operators (runtime::acd, queue::)", lambda s: has(s, "runtime::acd::") or has(s, "openline::queue::")),
    ("    Acd::poll_timeout (per SIP loop turn, from Calls::next_wake)", lambda s: has(s, "Acd::poll_timeout")),
    ("    queue dispatch (Queue::dispatch, policy::pick)", lambda s: has(s, "Queue::dispatch") or has(s, "policy::pick")),
    ("    Acd::publish (gauges)", lambda s: has(s, "Acd::publish")),
    ("  ringing an operator (Calls::ring_operator)", lambda s: has(s, "ring_operator")),
    ("UDP reader (transport, recvfrom)", lambda s: has(s, "transport::") and has(s, "recvfrom")),
    ("records writer (records::)", lambda s: not sqlx(s) and has(s, "records::")),
    ("SQLite thread (sqlx-sqlite-worker)", sqlx),
    ("tracing (log lines)", lambda s: has(s, "tracing_subscriber")),
    ("metrics / prometheus", lambda s: has(s, "metrics")),
    ("self: kernel finish_task_switch (context switches)", lambda s: self_has(s, "finish_task_switch")),
    ("self: malloc/free/memcpy", lambda s: self_has(s, "malloc", "free", "realloc", "memcpy", "memmove", "cfree")),
    ("self: in the kernel (any [k] symbol)", lambda s: len(s) > 1 and "[k]" in s[1]),
]
print(f"{len(samples)} samples; threads: " + ", ".join(f"{c} {100 * k / n:.0f}%" for c, k in Counter(s[0].split()[0] for s in samples).most_common(6)))
for name, pred in areas:
    share = 100 * sum(1 for s in samples if pred(s)) / n
    if share >= 0.3 or not name.startswith(" "):
        print(f"{share:6.1f}%  {name}")


def clean(sym):
    sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
    sym = re.sub(r"::h[0-9a-f]{16}$", "", sym)
    sym = re.sub(r"\s*\(.*\)$", "", sym)
    return sym


incl, kincl = Counter(), Counter()
for s in samples:
    seen = {clean(f) for f in s[1:]}
    for f in seen:
        if "openline::" in f and "{{closure}}" not in f[-12:]:
            incl[f] += 1
        elif re.match(r"^(__x64_sys_|do_syscall|__sys_|udp_|ip_|__netif|net_rx|ep_|do_epoll|schedule|futex|ksys_|vfs_|shmem_|copy_)", f):
            kincl[f] += 1
print("\ninclusive share, server functions (top 25):")
for f, k in incl.most_common(25):
    print(f"{100 * k / n:6.1f}%  {f}")
print("\ninclusive share, kernel entry points (top 15):")
for f, k in kincl.most_common(15):
    print(f"{100 * k / n:6.1f}%  {f}")
