"""Resource usage of an AMD code object, read from its NT_AMDGPU_METADATA note (msgpack).

kernel_resources(elf_bytes) -> {kernel name: {vgprs, sgprs, agprs, lds_bytes, scratch_bytes,
vgpr_spills, sgpr_spills}}. Only what the compile matrix reports; a small msgpack reader, no deps.
"""
from __future__ import annotations

import struct

_KEYS = {".vgpr_count": "vgprs", ".sgpr_count": "sgprs", ".agpr_count": "agprs",
         ".group_segment_fixed_size": "lds_bytes", ".private_segment_fixed_size": "scratch_bytes",
         ".vgpr_spill_count": "vgpr_spills", ".sgpr_spill_count": "sgpr_spills"}


def kernel_resources(elf: bytes) -> dict:
    meta = _metadata(elf)
    out = {}
    for k in meta.get("amdhsa.kernels", []):
        out[k.get(".name", "?")] = {v: k[key] for key, v in _KEYS.items() if key in k}
    return out


def _metadata(elf: bytes) -> dict:
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return {}
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
    for i in range(shnum):
        base = shoff + i * shentsize
        sh_type, = struct.unpack_from("<I", elf, base + 4)
        if sh_type != 7:          # SHT_NOTE
            continue
        off, size = struct.unpack_from("<QQ", elf, base + 0x18)
        pos, end = off, off + size
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12: pos + 12 + namesz].rstrip(b"\0")
            desc = pos + 12 + ((namesz + 3) & ~3)
            if name == b"AMDGPU" and ntype == 32:       # NT_AMDGPU_METADATA
                return _Reader(elf[desc: desc + descsz]).read()
            pos = desc + ((descsz + 3) & ~3)
    return {}


class _Reader:
    def __init__(self, b: bytes):
        self.b, self.i = b, 0

    def _take(self, n):
        v = self.b[self.i: self.i + n]
        self.i += n
        return v

    def _un(self, fmt):
        n = struct.calcsize(fmt)
        return struct.unpack(">" + fmt, self._take(n))[0]

    def read(self):
        t = self.b[self.i]
        self.i += 1
        if t <= 0x7F:
            return t
        if t >= 0xE0:
            return t - 0x100
        if 0x80 <= t <= 0x8F:
            return self._map(t & 0x0F)
        if 0x90 <= t <= 0x9F:
            return [self.read() for _ in range(t & 0x0F)]
        if 0xA0 <= t <= 0xBF:
            return self._take(t & 0x1F).decode(errors="replace")
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if t in simple:
            return simple[t]
        fmts = {0xCA: "f", 0xCB: "d", 0xCC: "B", 0xCD: "H", 0xCE: "I", 0xCF: "Q",
                0xD0: "b", 0xD1: "h", 0xD2: "i", 0xD3: "q"}
        if t in fmts:
            return self._un(fmts[t])
        if t in (0xD9, 0xDA, 0xDB):
            return self._take(self._un({0xD9: "B", 0xDA: "H", 0xDB: "I"}[t])).decode(errors="replace")
        if t in (0xC4, 0xC5, 0xC6):
            return self._take(self._un({0xC4: "B", 0xC5: "H", 0xC6: "I"}[t]))
        if t in (0xDC, 0xDD):
            return [self.read() for _ in range(self._un("H" if t == 0xDC else "I"))]
        if t in (0xDE, 0xDF):
            return self._map(self._un("H" if t == 0xDE else "I"))
        raise ValueError(f"msgpack type 0x{t:02x} not supported")

    def _map(self, n):
        return {self.read(): self.read() for _ in range(n)}
