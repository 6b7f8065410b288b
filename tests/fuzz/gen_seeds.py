#!/usr/bin/env python3
"""Writes the binary seed corpora of fuzz_segment and fuzz_gcra (tests/fuzz/corpus/), and
fuzz_dispatch's seeds of keyed-limit requests (templates_*; its other seeds were written by
hand).
The text seeds of fuzz_rate and fuzz_config are plain files, edited by hand. Run again after
a change of the input formats described at the top of fuzz_segment.c / fuzz_gcra.c."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def geometry(n):
    buckets = 1
    while buckets < 2 * n:
        buckets <<= 1
    slots_off = 4096
    meta_off = slots_off + 128 * n
    index_off = meta_off + 128 * n
    end = index_off + 4 * buckets
    return buckets, slots_off, meta_off, index_off, (end + 4095) // 4096 * 4096


def header(n, state=1):
    buckets, so, mo, io, size = geometry(n)
    h = b"RLDSHM\x00\x01" + struct.pack("<HHIQQII", 1, 0, 4096, 0, size, 128, n)
    h += struct.pack("<QIIQQII", so, 128, buckets, mo, io, state, 0)
    h += struct.pack("<QQQQQ", 1700000000000000000, 0, n, 10**12, 1)
    return h + b"\0" * (4096 - len(h)), size


def write(target, name, data):
    with open(os.path.join(HERE, "corpus", target, name), "wb") as f:
        f.write(data)


def le64(*v):
    return b"".join(struct.pack("<Q", x & (2**64 - 1)) for x in v)


def segment():
    # built header, regions zero / raw bytes
    write("fuzz_segment", "built_empty_1", bytes([0x00, 0x00]))
    write("fuzz_segment", "built_empty_64", bytes([0x00, 63]))
    # a raw slot: tat, frac_ver (ver 0), gen 1, flags LIVE, bank 0 = 20/s burst 10
    t = -(-(10**9 << 32) // 20)
    slot = le64(10**12, 0) + struct.pack("<II", 1, 0) + le64(0, 0, 0) + struct.pack("<II", 1, 0)
    slot += le64(0) + le64(t & (2**64 - 1), t >> 64, 10, 0) + b"\0" * 32
    assert len(slot) == 128
    write("fuzz_segment", "built_raw_slot", bytes([0x00, 0x00]) + slot)
    # populated: k limits, each (name sel, rate sel, flags, ver, [burst], tat u64, frac u8, gen)
    for n, k, fl in ((1, 1, 0), (8, 6, 0x03), (64, 12, 0x07), (5, 5, 0x1b)):
        body = bytes([k])
        for i in range(k):
            body += bytes([i, (i * 7) % 100, fl, i])
            if fl & 1:
                body += le64(1000 + i)
            body += le64(10**12 + i * 10**9) + bytes([i, 1])
            if fl & 4:
                body += bytes([2]) + le64(5)
        write("fuzz_segment", "populated_%d_%d_%02x" % (n, k, fl), bytes([0x08, n - 1]) + body)
    # populated then region patches: bump a name hash, point the index past the end
    write("fuzz_segment", "populated_patched",
          bytes([0x08, 3, 2, 0, 0, 0, 0]) + le64(10**12) + bytes([0, 1, 1, 0, 0, 1])
          + bytes([0x40, 0x01, 0xff, 0x00, 0x04, 0x07]))
    # header patches (mode 2): slot_count, state, index_seq, abi
    write("fuzz_segment", "patched_header", bytes([0x02, 3, 3, 36, 9, 72, 2, 8, 2]))
    # raw header (mode 3), valid, with and without regions; and another ABI
    for n in (1, 2, 17):
        h, size = header(n)
        write("fuzz_segment", "raw_valid_%d" % n, bytes([0x03, n - 1]) + h)
    h, size = header(4)
    write("fuzz_segment", "raw_valid_4_slots", bytes([0x03, 3]) + h + slot * 4)
    write("fuzz_segment", "raw_abi2", bytes([0x03, 0]) + h[:8] + b"\x02" + h[9:])
    write("fuzz_segment", "raw_init_state", bytes([0x07, 0]) + header(1, 0)[0] + b"\x00")
    # truncated mappings
    write("fuzz_segment", "truncated_header", bytes([0x10, 0]) + le64(100))
    write("fuzz_segment", "truncated_regions", bytes([0x10, 7]) + le64(4096 + 300))


def gcra():
    sel_edges = [0, 1, 2, 3]
    seeds = {
        "zeros": b"\0" * 8,
        "ones": b"\xff" * 160,
        # count=3500 (sel 4), period 60000 ms, burst 3500, now 10^15 ns, tat = now, cost 1
        "llm_requests": bytes([4]) + le64(3499) + bytes([4]) + le64(59999) + bytes([4]) + le64(3499)
        + bytes([4]) + le64(10**15) + bytes([0, 0, 0, 0, 0]) + bytes([4]) + le64(2**62)
        + bytes([4]) + le64(1) + bytes([0]) + bytes([4]) + le64(1) + le64(0),
        "debt_edge": bytes([1]) + le64(0) + bytes([0]) + le64(0) + bytes([1]) + le64(0)
        + bytes([1]) + le64(0) + bytes([1, 0, 0, 0, 0]) + le64(0, 0) + bytes([1]) + le64(0)
        + bytes([1, 1]) + le64(0) + bytes([1]) + le64(0),
        "queued": bytes([4]) + le64(999) + bytes([4]) + le64(3599999) + bytes([0]) + le64(0)
        + bytes([4]) + le64(5 * 10**14) + bytes([2]) + le64(7) + bytes([5]) + le64(2**62 + 10**12)
        + bytes([1]) + le64(0) + bytes([1, 4]) + le64(123456) + bytes([4]) + le64(3),
    }
    for e in sel_edges:
        seeds["edges_%d" % e] = bytes([e]) + le64(0) + bytes([e]) + le64(0) + bytes([e]) + le64(0) \
            + bytes([e]) + le64(0) + bytes([e, 0, 0, 0, 0]) + le64(0) + bytes([e]) + le64(0)
    for name, data in seeds.items():
        write("fuzz_gcra", name, data)


# ---- fuzz_dispatch: requests in protobuf (proto/rld.proto), hand-encoded ------------------

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def pb_int(tag, v):
    return varint(tag << 3) + varint(v)


def pb_len(tag, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(tag << 3 | 2) + varint(len(data)) + data


def request(rid, body_tag, body):
    return pb_int(1, rid) + pb_len(body_tag, body)


def put(name, rate, create=False, update=False, tmpl=False, max_keys=0, overflow="", algo="",
        burst=0):
    lc = pb_len(1, name) + pb_len(2, rate)
    if burst:
        lc += pb_int(3, burst)
    if algo:
        lc += pb_len(30, algo)
    if tmpl:
        lc += pb_int(40, 1)
    if max_keys:
        lc += pb_int(41, max_keys)
    if overflow:
        lc += pb_len(42, overflow)
    return pb_len(1, lc) + (pb_int(2, 1) if create else b"") + (pb_int(3, 1) if update else b"")


def reset(name, key=b""):
    return pb_len(1, name) + (pb_len(2, key) if key else b"")


def packets(flag, reqs):
    out = bytes([flag])
    for r in reqs:
        out += struct.pack("<H", len(r)) + r
    return out


def dispatch():
    # fuzz_dispatch's configuration has templates t (gcra) and w (fixed, overflow = allow)
    PUT, DELETE, RESET, STATUS, STATS = 6, 7, 8, 5, 10
    admin = [
        request(1, PUT, put("t2", "2/s", create=True, tmpl=True, max_keys=10, overflow="allow")),
        request(2, PUT, put("t2", "4/s", update=True, tmpl=True, max_keys=12, overflow="deny")),
        request(3, PUT, put("t2", "4/s", update=True, tmpl=True, max_keys=100000)),
        request(4, PUT, put("t", "1/s", update=True)),               # a template, as a limit
        request(5, PUT, put("x", "1/s", create=True, max_keys=5)),   # max_keys on a limit
        request(6, PUT, put("t3", "1/s", create=True, tmpl=True, overflow="maybe")),
        request(7, PUT, put("t3", "10/min", create=True, tmpl=True, algo="sliding")),
        request(8, PUT, put("t4", "10/min", create=True, tmpl=True, algo="fixed", max_keys=8)),
        request(9, RESET, reset("t", b"203.0.113.7")),
        request(10, RESET, reset("t", b"\x00\xff" * 200)),          # longer than a key
        request(11, RESET, reset("a", b"k")),                        # a key of a limit
        request(12, RESET, reset("t")),
        request(13, STATUS, pb_len(1, "t")),
        request(14, STATUS, b""),
        request(15, STATS, b""),
        request(16, DELETE, pb_len(1, "t2")),
        request(17, PUT, put("big", "1/s", create=True, tmpl=True, max_keys=268435456)),
        request(18, DELETE, pb_len(1, "w")),
        request(19, PUT, put("w2", "1/s", create=True, tmpl=True, max_keys=8)),
        # rate = caller: created, and a template switched to it and back (every key full)
        request(20, PUT, put("tc", "caller", create=True, tmpl=True, max_keys=8)),
        request(21, PUT, put("t", "caller", update=True, tmpl=True)),
        request(22, PUT, put("t", "5/s", update=True, tmpl=True)),
        request(23, PUT, put("tc", "caller", update=True, tmpl=True, burst=3)),
        request(24, PUT, put("x2", "caller", create=True)),            # caller on a limit
    ]
    write("fuzz_dispatch", "templates_admin", packets(0x07, admin))
    # the same, not an admin: refused, but Status and Stats answer
    write("fuzz_dispatch", "templates_not_admin", packets(0x01, admin[8:16]))


segment()
gcra()
dispatch()
