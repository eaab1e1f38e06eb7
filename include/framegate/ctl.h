/*
 * The control protocol between the router's control socket and fgctl: one
 * definition, included by the server (control/server.c) and the client
 * (control/fgctl.c).
 *
 * Transport: a Unix stream socket (the router's `control_socket`, mode 0660,
 * or 0666 when the configuration names a read group). Each peer is judged
 * once, at accept, by the credentials the kernel recorded when it connected
 * (SO_PEERCRED, SO_PEERGROUPS): root and the control group may change state,
 * the read group may read it (devices' keys excepted), anyone else may do
 * nothing. Peers that may not change state get at most
 * 64 - 8 connections; the last 8 are kept for root and the control group.
 * Framing: each message is a 4-byte big-endian length, then that many bytes
 * of one JSON object (UTF-8). A request longer than FG_CTL_MAX_REQUEST is
 * answered with an error and the connection is closed; so is one that has
 * not arrived whole within FG_CTL_REQUEST_SECONDS of its first byte. A
 * connection idle for FG_CTL_IDLE_SECONDS is closed. A peer may close at any
 * moment, before or while reading its replies: the router only drops them.
 * A request field that the command does not take is refused by name.
 *
 * Requests are {"cmd": NAME, ...arguments}. Every response has "ok": true
 * with the command's result fields, or "ok": false with "code" (an errno
 * name such as "EEXIST") and "error" (one sentence naming the input).
 *
 *   cmd           arguments                    result                writes
 *   apply         "op": a mapping-file op      "applied": 1          yes
 *   rekey         "tenant", "device", "key"    "applied": 1          yes
 *                 (no "key": remove it; the mapping is kept as it is)
 *   load.begin    -                            -                     yes
 *   load.chunk    "text": whole op lines       "lines": total so far yes
 *   load.commit   -                            "applied": N          yes
 *   load.abort    -                            -                     yes
 *   dump          "tenant": T (optional),      frames, see below     no
 *                 "with_keys": bool (optional; root and the control group)
 *   stats         -                            counters (SPEC 3)     no
 *   drops         "tenant": T (optional)       "drops": {...}        no
 *   health        -                            state of the router   no
 *                 (with a shield: "shield_in_step" and "shield": {...}; while
 *                 a capture runs: "capture": {"reason", "count", "saved"})
 *   shield.check  -                            "in_step": bool,      no
 *                 "differences": N, "listed": [{"entry": "tenant"|"owner",
 *                 "problem": "missing"|"extra"|"differs", "tenant", "device",
 *                 "tables": {...}, "shield": {...}}, ...] (at most 1000),
 *                 "tables": {"tenants", "mappings"}, "shield": {"tenants",
 *                 "owners"}: the XDP shield's maps against the tables
 *   shield.resync -                            "tenants", "owners"   yes
 *                 (empties the shield's maps and writes the tables into them)
 *   capture       "reason", "count",           "saved", "timed_out", yes
 *                 "tenant" (optional),         "packets": [{"ts_ns",
 *                 "timeout" (s, optional)      "len", "data"}, ...]
 *                 (copies of dropped packets of that reason, base64, at most
 *                 FG_CTL_CAPTURE_SNAPLEN bytes each; "len" is the packet's
 *                 length on the wire, "ts_ns" its arrival in ns since the
 *                 epoch. Answered when "count" are saved or "timeout" passed;
 *                 one capture at a time (EBUSY); a peer that disconnects
 *                 first cancels it. Packets carry tenants' video: only root
 *                 and the control group may capture.)
 *
 * dump answers in several frames, so that neither side ever holds the whole
 * state: {"ok":true,"more":true,"text":LINES} as often as needed (LINES:
 * whole op lines, each ending in '\n', together at most 1 MiB), then
 * {"ok":true,"ops":N,"bytes":B} (N op lines, B bytes in all the LINES).
 * An error frame ({"ok":false,...}) may end it instead. Without "with_keys"
 * a keyed device's "key" is "withheld", which a load refuses by name. The
 * requests a connection sends after a dump are answered after its last frame.
 *
 * While the journal cannot be written (a full disk, an I/O error), every
 * change is refused with the cause's code (e.g. "ENOSPC") and health says
 * "status":"degraded" with "degraded":{"cause", "since_seconds", "retries"};
 * the router retries with backoff and accepts changes again once the journal
 * takes writes, without a restart and with every acknowledged change kept.
 * A load's op lines, over every load open at once, may hold at most the
 * configuration's load_max_mib: past that the load is refused (E2BIG).
 *
 * A change is acknowledged (ok) only after it is in the fsync'd journal and
 * every worker has passed a quiescent point since it was published (SPEC 4),
 * and, on a router with an XDP shield, after the shield's maps hold it too: a
 * change the maps could not take is answered "EIO" (it is journaled and in
 * the tables; `shield.resync` brings the maps back in step). shield.check
 * and shield.resync on a router without a shield answer "ENOENT".
 * A load is one transaction: its lines are decoded as they arrive (an error
 * names the line within the load) and checked together at commit; any error
 * applies nothing.
 */
#ifndef FRAMEGATE_CTL_H
#define FRAMEGATE_CTL_H

#include <stdint.h>

#define FG_CTL_VERSION 1
#define FG_CTL_MAX_REQUEST (4u << 20)     /* bytes of one message */
#define FG_CTL_LOAD_CHUNK (1u << 20)      /* bytes of load text per chunk */
#define FG_CTL_IDLE_SECONDS 60
#define FG_CTL_REQUEST_SECONDS 10         /* a request's first byte to its last */
#define FG_CTL_DEFAULT_SOCKET "/run/framegate/control.sock"

/* The "key" of a keyed device in a dump made without keys: the op decoder
 * refuses it by name, so such a dump never loads as unauthenticated devices. */
#define FG_KEY_WITHHELD "withheld"

/* capture: the most packets one capture saves, its longest wait, the wait
 * without "timeout", and the bytes of each packet kept. */
#define FG_CTL_CAPTURE_MAX_COUNT 1024
#define FG_CTL_CAPTURE_MAX_TIMEOUT 3600
#define FG_CTL_CAPTURE_DEFAULT_TIMEOUT 60
#define FG_CTL_CAPTURE_SNAPLEN 2048

/* fgctl exit codes. */
#define FG_CTL_EXIT_OK 0
#define FG_CTL_EXIT_REFUSED 1      /* refused or invalid */
#define FG_CTL_EXIT_USAGE 2
#define FG_CTL_EXIT_UNREACHABLE 3  /* router unreachable */

#endif /* FRAMEGATE_CTL_H */
