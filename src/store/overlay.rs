//! The pages written since the last checkpoint, held in memory above the store file.
//!
//! Byte ranges, never overlapping: a write replaces whatever it covers (trimming the
//! ranges it overlaps), a read is patched with every range it meets. redb writes whole
//! pages at fixed offsets, so the common case is replacing one range by another of the
//! same size.

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub(crate) struct Overlay {
    ranges: BTreeMap<u64, Vec<u8>>,
}

impl Overlay {
    /// Records `data` at `offset`, above anything older.
    pub(crate) fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if let Some(same) = self.ranges.get_mut(&offset) {
            if same.len() == data.len() {
                same.copy_from_slice(data);
                return;
            }
        }
        let end = offset + data.len() as u64;
        self.cut(offset, end);
        self.ranges.insert(offset, data.to_vec());
    }

    /// Removes every byte in `start..end` from the ranges (keeping what lies outside).
    fn cut(&mut self, start: u64, end: u64) {
        let first = self
            .ranges
            .range(..start)
            .next_back()
            .map_or(start, |(&s, _)| s);
        let hit: Vec<u64> = self.ranges.range(first..end).map(|(&s, _)| s).collect();
        for s in hit {
            let Some(bytes) = self.ranges.remove(&s) else {
                continue;
            };
            let e = s + bytes.len() as u64;
            if e <= start || s >= end {
                self.ranges.insert(s, bytes);
                continue;
            }
            if s < start {
                self.ranges
                    .insert(s, bytes[..(start - s) as usize].to_vec());
            }
            if e > end {
                self.ranges
                    .insert(end, bytes[(end - s) as usize..].to_vec());
            }
        }
    }

    /// Drops every byte at or past `len` (the file was shortened).
    pub(crate) fn truncate(&mut self, len: u64) {
        self.cut(len, u64::MAX);
    }

    /// Whether one range holds all of `offset..offset + len`; then copies it into `out`.
    pub(crate) fn read_whole(&self, offset: u64, out: &mut [u8]) -> bool {
        let Some((&s, bytes)) = self.ranges.range(..=offset).next_back() else {
            return false;
        };
        let from = (offset - s) as usize;
        match bytes.get(from..from + out.len()) {
            Some(src) => {
                out.copy_from_slice(src);
                true
            }
            None => false,
        }
    }

    /// Copies every recorded byte of `offset..offset + out.len()` into `out`.
    pub(crate) fn patch(&self, offset: u64, out: &mut [u8]) {
        let end = offset + out.len() as u64;
        let first = self
            .ranges
            .range(..offset)
            .next_back()
            .map_or(offset, |(&s, _)| s);
        for (&s, bytes) in self.ranges.range(first..end) {
            let e = s + bytes.len() as u64;
            let (lo, hi) = (s.max(offset), e.min(end));
            if lo >= hi {
                continue;
            }
            out[(lo - offset) as usize..(hi - offset) as usize]
                .copy_from_slice(&bytes[(lo - s) as usize..(hi - s) as usize]);
        }
    }

    /// Every range, in offset order.
    pub(crate) fn ranges(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.ranges.iter().map(|(&s, b)| (s, b.as_slice()))
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.ranges.values().map(Vec::len).sum()
    }

    pub(crate) fn clear(&mut self) {
        self.ranges.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The overlay against a plain byte array, under random writes, truncations and reads.
    #[test]
    fn agrees_with_a_flat_image() {
        let mut seed = 0x1234_5678_9ABC_DEF1u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut overlay = Overlay::default();
        let mut flat = vec![0u8; 256];
        let mut written = vec![false; 256];
        for step in 0..5_000u32 {
            match next(10) {
                0 => {
                    let len = next(256);
                    overlay.truncate(len);
                    for i in len as usize..256 {
                        written[i] = false;
                        flat[i] = 0;
                    }
                }
                1..=5 => {
                    let off = next(250);
                    let len = 1 + next(256 - off - 1).min(40);
                    let data: Vec<u8> = (0..len).map(|i| (step as u64 + i) as u8 | 1).collect();
                    overlay.write(off, &data);
                    flat[off as usize..(off + len) as usize].copy_from_slice(&data);
                    written[off as usize..(off + len) as usize].fill(true);
                }
                _ => {
                    let off = next(250);
                    let len = 1 + next(256 - off - 1).min(60);
                    let mut out = vec![0u8; len as usize];
                    overlay.patch(off, &mut out);
                    let want: Vec<u8> = (off..off + len)
                        .map(|i| {
                            if written[i as usize] {
                                flat[i as usize]
                            } else {
                                0
                            }
                        })
                        .collect();
                    assert_eq!(out, want, "step {step}");
                    let mut whole = vec![0u8; len as usize];
                    if overlay.read_whole(off, &mut whole) {
                        assert_eq!(whole, want, "step {step}");
                    }
                }
            }
        }
        let total: usize = written.iter().filter(|w| **w).count();
        assert_eq!(overlay.bytes(), total);
    }
}
